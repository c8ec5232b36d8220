package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/colibri-ws/colibri/internal/testenv"
)

// requiredEnv makes the interop tests mandatory: with
// COLIBRI_INTEROP_TEST=required (.ci/run sets it) a client that is not
// installed fails the test instead of skipping it.
const requiredEnv = "COLIBRI_INTEROP_TEST"

// stack is a WebSocket client implementation the suite drives.
type stack struct {
	name    string
	version string
	can     abilities
	// offer returns the permessage-deflate offer the client sends when
	// asked for want, or nil when it sends none; clients that cannot
	// choose their parameters send their own.
	offer func(want *deflateOffer) *deflateOffer
	// open starts a driver for one connection.
	open func(t *testing.T) driver
}

// abilities are what a client's API lets it do.
type abilities struct {
	invalidUTF8 bool // send a text message that is not UTF-8
	fragments   bool // send a message in fragments of chosen sizes
	splitRunes  bool // ... cut inside a UTF-8 sequence
	ping        bool // send a PING and see its PONG
	anyOffer    bool // make its own permessage-deflate offer
}

// allStacks returns the clients of the suite; those that are not
// installed are listed with open nil and why in version.
func allStacks() []*stack {
	return []*stack{nodeStack(), pythonStack(), chromiumStack(), gorillaStack(), coderStack()}
}

// use returns s's driver opener, or skips (fails, where required) the
// test when s is not installed.
func (s *stack) use(t *testing.T) func(t *testing.T) driver {
	t.Helper()
	if s.open == nil {
		unavailable(t, s.version)
	}
	return s.open
}

// unavailable reports a client that is not installed: the test fails
// where requiredEnv says so, and is skipped otherwise, with a notice on the
// terminal even without -v.
func unavailable(t *testing.T, why string) {
	t.Helper()
	t.Skip(missing(t, why))
}

// missing is unavailable for a test that goes on without the client.
func missing(t *testing.T, why string) string {
	t.Helper()
	return testenv.Missing(t, requiredEnv, "interop: "+why)
}

var nodeStack = sync.OnceValue(func() *stack {
	s := &stack{name: "node-ws",
		can: abilities{invalidUTF8: true, fragments: true, splitRunes: true, ping: true, anyOffer: true},
		offer: func(want *deflateOffer) *deflateOffer {
			if want == nil {
				return nil
			}
			// ws offers client_max_window_bits by default.
			o := *want
			if o.ClientMaxWindowBits == 0 {
				o.ClientMaxWindowBits = -1
			}
			return &o
		},
	}
	node, err := exec.LookPath("node")
	if err != nil {
		s.version = "Node.js not found; install it with `apt-get install nodejs npm`, then `npm ci --prefix interop/testdata/node`"
		return s
	}
	var pkg struct{ Version string }
	b, err := os.ReadFile(testdata("node", "node_modules", "ws", "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		s.version = "Node's ws is not installed; run `npm ci --prefix interop/testdata/node`"
		return s
	}
	out, _ := exec.Command(node, "--version").Output()
	s.version = fmt.Sprintf("ws %s on Node.js %s", pkg.Version, strings.TrimSpace(string(out)))
	s.open = func(t *testing.T) driver {
		return startProcess(t, "node ws client", node, testdata("node", "client.js"))
	}
	return s
})

// python returns a Python with websockets, Debian's first (the python3 on
// PATH may be another one), and its version.
var python = sync.OnceValues(func() (string, string) {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-c", "import websockets, sys; print(websockets.__version__, sys.version.split()[0])").Output()
		if err == nil {
			return path, strings.TrimSpace(string(out))
		}
	}
	return "", ""
})

var pythonStack = sync.OnceValue(func() *stack {
	s := &stack{name: "python-websockets",
		can: abilities{invalidUTF8: true, fragments: true, ping: true, anyOffer: true},
		offer: func(want *deflateOffer) *deflateOffer {
			if want == nil {
				return nil
			}
			// websockets offers client_max_window_bits by default.
			o := *want
			if o.ClientMaxWindowBits == 0 {
				o.ClientMaxWindowBits = -1
			}
			return &o
		},
	}
	py, v := python()
	if py == "" {
		s.version = "no Python with websockets found; install it with `apt-get install python3-websockets`"
		return s
	}
	ws, pyv, _ := strings.Cut(v, " ")
	s.version = fmt.Sprintf("websockets %s on Python %s", ws, pyv)
	s.open = func(t *testing.T) driver {
		return startProcess(t, "python websockets client", py, testdata("python", "client.py"))
	}
	return s
})
