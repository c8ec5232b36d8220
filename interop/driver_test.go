package interop

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/internal/testlog"
)

// Every client is driven the same way: the test sends it commands, one at
// a time, and reads one answer per command. Node's and Python's clients
// are scripts under testdata that read commands as JSON lines on stdin;
// the browser's is a page script called through the DevTools protocol;
// gorilla's and coder's run in this process.

// command is one step for a client. Payloads are named by kind and size
// (see payload) rather than carried, so that 16 MiB messages do not cross
// pipes.
type command struct {
	Op        string        `json:"op"`
	URL       string        `json:"url,omitempty"`
	Protocols []string      `json:"protocols,omitempty"`
	Deflate   *deflateOffer `json:"deflate,omitempty"`
	Kind      string        `json:"kind,omitempty"`
	Size      int           `json:"size"`
	Sizes     []int         `json:"sizes,omitempty"`
	Text      string        `json:"text,omitempty"`
	Data      string        `json:"data,omitempty"`
	Code      int           `json:"code"`
	Reason    string        `json:"reason"`
}

// The commands:
//
//	connect    dial URL offering Protocols and, when Deflate is set,
//	           permessage-deflate with its parameters; answers Protocol
//	           and Extensions (the server's Sec-WebSocket-Extensions)
//	send       send payload(Kind, Size) as one message
//	sendText   send Text as one message
//	fragments  send payload(Kind, sum of Sizes) as one message, a frame
//	           per size
//	invalidUTF8 send a text message of the bytes "ok \xff"
//	recv       the next message (Kind, Size, SHA256, Text for short text)
//	           or, once the connection closed, the server's close
//	ping       send a PING with Data; answers the PONG's payload
//	close      close with Code and Reason; answers the server's close
//	exit       drop the connection and end
const (
	opConnect     = "connect"
	opSend        = "send"
	opSendText    = "sendText"
	opFragments   = "fragments"
	opInvalidUTF8 = "invalidUTF8"
	opRecv        = "recv"
	opPing        = "ping"
	opClose       = "close"
	opExit        = "exit"
)

// deflateOffer is a permessage-deflate offer (RFC 7692 §7.1). A window of
// 0 leaves the parameter out; client_max_window_bits -1 sends it without
// a value.
type deflateOffer struct {
	ServerNoContextTakeover bool `json:"server_no_context_takeover,omitempty"`
	ClientNoContextTakeover bool `json:"client_no_context_takeover,omitempty"`
	ServerMaxWindowBits     int  `json:"server_max_window_bits,omitempty"`
	ClientMaxWindowBits     int  `json:"client_max_window_bits,omitempty"`
}

// result is a client's answer to a command.
type result struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	Protocol   string `json:"protocol,omitempty"`
	Extensions string `json:"extensions,omitempty"`
	Event      string `json:"event,omitempty"` // "message" or "close"
	Kind       string `json:"kind,omitempty"`
	Size       int    `json:"size,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	Text       string `json:"text,omitempty"`
	Code       int    `json:"code,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Pong       string `json:"pong,omitempty"`
}

func (r result) String() string {
	switch {
	case !r.OK:
		return "error: " + r.Error
	case r.Event == "message" && r.Text != "" && len(r.Text) <= 80:
		return fmt.Sprintf("%s %q", r.Kind, r.Text)
	case r.Event == "message":
		return fmt.Sprintf("%s of %d bytes (sha256 %.12s)", r.Kind, r.Size, r.SHA256)
	case r.Event == "close":
		return fmt.Sprintf("close %d %q", r.Code, r.Reason)
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// textUnit is repeated to make text payloads: ASCII, a four-byte and two
// two-byte sequences in 19 bytes.
const textUnit = "colibri 🐦 ünï "

// payload returns the message the clients make for kind and size: text
// of repeated textUnit, topped up with "x", or binary bytes whose byte i
// is (7i + i/1024) mod 256. Both compress well.
func payload(kind string, size int) []byte {
	b := make([]byte, size)
	if kind == "binary" {
		for i := range b {
			b[i] = byte(i*7 + i>>10)
		}
		return b
	}
	n := copy(b, strings.Repeat(textUnit, size/len(textUnit)))
	copy(b[n:], strings.Repeat("x", size-n))
	return b
}

var sums sync.Map // "kind/size" → hex sha256

// sum returns the hex SHA-256 of payload(kind, size).
func sum(kind string, size int) string {
	key := fmt.Sprint(kind, "/", size)
	if v, ok := sums.Load(key); ok {
		return v.(string)
	}
	s := hexSum(payload(kind, size))
	sums.Store(key, s)
	return s
}

// hexSum returns the hex SHA-256 of p.
func hexSum(p []byte) string {
	h := sha256.Sum256(p)
	return hex.EncodeToString(h[:])
}

// driver runs the commands of one connection.
type driver interface {
	do(c command) (result, error)
	stop()
}

// commandTimeout bounds one command: a 16 MiB echo under the race
// detector included.
const commandTimeout = 60 * time.Second

// process is a driver that is a script reading commands on stdin.
type process struct {
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string
	stderr *testlog.Buffer
	once   sync.Once
}

// startProcess starts argv as a driver; the test's cleanup ends it.
func startProcess(t *testing.T, name string, argv ...string) *process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{name: name, cmd: cmd, in: in, lines: make(chan string), stderr: &testlog.Buffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *process) do(c command) (result, error) {
	b, _ := json.Marshal(c)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return result{}, fmt.Errorf("%s: sending %s: %v (stderr: %s)", p.name, c.Op, err, p.stderr)
	}
	select {
	case line, ok := <-p.lines:
		if !ok {
			return result{}, fmt.Errorf("%s ended during %s; stderr:\n%s", p.name, c.Op, p.stderr)
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return result{}, fmt.Errorf("%s answered %s with %q: %v", p.name, c.Op, line, err)
		}
		return r, nil
	case <-time.After(commandTimeout):
		return result{}, fmt.Errorf("%s: no answer to %s within %v; stderr:\n%s", p.name, c.Op, commandTimeout, p.stderr)
	}
}

// stop asks the script to end, and kills it if it does not.
func (p *process) stop() { p.once.Do(p.end) }

func (p *process) end() {
	_ = p.in.Close()
	exited := make(chan struct{})
	go func() {
		for range p.lines {
		}
		_ = p.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-exited
	}
}

// testdata returns the absolute path of a file under testdata.
func testdata(parts ...string) string {
	p, _ := filepath.Abs(filepath.Join(append([]string{"testdata"}, parts...)...))
	return p
}
