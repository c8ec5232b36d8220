package xconnect_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/internal/xconnect"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The import ran before net/http initialized: its HTTP/2 server offers
// extended CONNECT, which x/net's client waits for before it sends one.
func TestServerOffersExtendedConnect(t *testing.T) {
	cert, pool := h2test.Certificate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP2(true)
	srv := &http.Server{
		Protocols: &protos,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Seen", fmt.Sprintf("%s %s %s", r.Proto, r.Method, r.Header.Get(":protocol")))
			w.WriteHeader(http.StatusOK)
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	client := h2test.NewClient(pool)
	defer func() {
		client.Close()
		_ = srv.Close()
		<-served
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, resp, err := client.Dial(ctx, "https://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatalf("extended CONNECT: %v", err)
	}
	s.CloseNow()
	if got := resp.Header.Get("X-Seen"); got != "HTTP/2.0 CONNECT websocket" {
		t.Fatalf("server saw %q", got)
	}
}

// helperEnv makes this test binary print its GODEBUG and exit, for
// TestExplicitSettingWins.
const helperEnv = "XCONNECT_PRINT_GODEBUG"

func TestPrintGODEBUG(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by TestExplicitSettingWins")
	}
	fmt.Printf("GODEBUG=%s\n", os.Getenv("GODEBUG"))
}

func TestExplicitSettingWins(t *testing.T) {
	for env, want := range map[string]string{
		"http2xconnect=0":                "GODEBUG=http2xconnect=0\n",
		"http2debug=1":                   "GODEBUG=http2debug=1," + xconnect.Setting + "\n",
		"madvdontneed=1,http2xconnect=1": "GODEBUG=madvdontneed=1,http2xconnect=1\n",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPrintGODEBUG$")
		cmd.Env = append(os.Environ(), helperEnv+"=1", "GODEBUG="+env)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		if !strings.HasPrefix(string(out), want) {
			t.Errorf("started with GODEBUG=%s: %q, want %q", env, out, want)
		}
	}
}
