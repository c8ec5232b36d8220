package wsclient_test

// Review of e4077c4 (teardown over TLS): after a clean close the client
// waits past the server's close_notify for its TCP close, writes no
// close_notify of its own, and gives up at CloseTimeout.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// r6Counted counts the bytes read from a connection.
type r6Counted struct {
	net.Conn
	n atomic.Int64
}

func (c *r6Counted) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// r6Report is what the TLS server saw after its close_notify.
type r6Report struct {
	ok       bool          // the closing handshake went as planned
	after    int64         // raw bytes the client sent after the server's close_notify
	endedIn  time.Duration // until the client closed TCP
	endedErr error         // what the raw read ended with: io.EOF
}

// r6TLSServer serves one WebSocket over TLS (at most version max) on
// 127.0.0.1: it answers the client's CLOSE, then ends TLS as end says:
// "notify" sends close_notify and holds TCP open, reading raw bytes until
// the client closes; "tcp" closes TCP without a close_notify.
func r6TLSServer(t *testing.T, max uint16, end string) (addr string, cfg *tls.Config, reports <-chan r6Report) {
	t.Helper()
	certSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(certSrv.Close)
	scfg := certSrv.TLS.Clone()
	scfg.MaxVersion = max
	scfg.NextProtos = nil
	ch := make(chan r6Report, 1)
	addr = tcpServer(t, func(conn net.Conn) {
		var rep r6Report
		defer func() { ch <- rep }()
		_ = conn.SetDeadline(time.Now().Add(4 * time.Second))
		cc := &r6Counted{Conn: conn}
		tc := tls.Server(cc, scfg)
		br := bufio.NewReader(tc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(tc, switchAnswer(req, ""))
		h, _, err := pReadFrame(br)
		if err != nil || h.Op != frames.OpClose {
			return
		}
		if _, err := tc.Write([]byte{0x88, 0x02, 0x03, 0xe8}); err != nil {
			return
		}
		switch end {
		case "notify":
			if err := tc.CloseWrite(); err != nil {
				return
			}
			sent, start := cc.n.Load(), time.Now()
			var scratch [512]byte
			for err == nil {
				_, err = cc.Read(scratch[:])
			}
			rep = r6Report{ok: true, after: cc.n.Load() - sent, endedIn: time.Since(start), endedErr: err}
		case "tcp":
			rep.ok = true
			_ = conn.Close()
		}
	})
	return addr, &tls.Config{RootCAs: certPool(certSrv), ServerName: "example.com"}, ch
}

// A server that sends its close_notify and keeps TCP open: the client
// waits for its TCP close until CloseTimeout, then closes TCP itself,
// writing nothing (no close_notify), with TLS 1.2 and 1.3. Run returns
// about CloseTimeout after the server's CLOSE, not later.
func TestCornerTLSCloseNotifyWithoutTCPClose(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			addr, tcfg, reports := r6TLSServer(t, v, "notify")
			o := options()
			o.TLSConfig = tcfg
			o.Config = &wsconn.Config{Logger: quiet, CloseTimeout: 300 * time.Millisecond}
			start := time.Now()
			err := wsclient.Run(testCtx(t), "wss://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *session) error {
				return nil
			}, o)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			rep := after(t, reports, "the server's report")
			if !rep.ok {
				t.Fatal("the closing handshake did not go as planned")
			}
			if rep.after != 0 {
				t.Errorf("the client sent %d bytes after the server's close_notify; want none", rep.after)
			}
			if !errors.Is(rep.endedErr, io.EOF) {
				t.Errorf("the server's raw read ended with %v, want EOF (the client closed TCP)", rep.endedErr)
			}
			if rep.endedIn < 200*time.Millisecond || rep.endedIn > time.Second {
				t.Errorf("the client closed TCP %v after the close_notify; want about CloseTimeout (300ms)", rep.endedIn)
			}
			if took > 1500*time.Millisecond {
				t.Errorf("Run took %v; CloseTimeout is 300ms", took)
			}
		})
	}
}

// A server that closes TCP without a close_notify (at a record boundary,
// which crypto/tls reads as EOF): Run returns at once, not after
// CloseTimeout.
func TestCornerTLSTCPCloseWithoutCloseNotify(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			addr, tcfg, reports := r6TLSServer(t, v, "tcp")
			o := options()
			o.TLSConfig = tcfg
			o.Config = &wsconn.Config{Logger: quiet, CloseTimeout: 2 * time.Second}
			start := time.Now()
			err := wsclient.Run(testCtx(t), "wss://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *session) error {
				return nil
			}, o)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if rep := after(t, reports, "the server's report"); !rep.ok {
				t.Fatal("the closing handshake did not go as planned")
			}
			if took > time.Second {
				t.Errorf("Run took %v; the server closed TCP at once", took)
			}
		})
	}
}
