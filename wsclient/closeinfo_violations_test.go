package wsclient_test

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// clObserver is scObserver that also keeps the codes of the violations
// it is told about.
type clObserver struct {
	scObserver
	vmu        sync.Mutex
	violations []frames.CloseCode
	done       chan struct{}
}

func newCLObserver() *clObserver { return &clObserver{done: make(chan struct{})} }

func (o *clObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }

func (o *clObserver) ProtocolError(v *frames.Violation) {
	o.vmu.Lock()
	o.violations = append(o.violations, v.Code)
	o.vmu.Unlock()
}

func (o *clObserver) Closed(info wsconn.CloseInfo) {
	o.scObserver.Closed(info)
	close(o.done)
}

// wait returns the CloseInfo and the violations reported.
func (o *clObserver) wait(t *testing.T) (wsconn.CloseInfo, []frames.CloseCode) {
	t.Helper()
	select {
	case <-o.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Closed was not called")
	}
	o.mu.Lock()
	info := o.info
	o.mu.Unlock()
	o.vmu.Lock()
	defer o.vmu.Unlock()
	return info, append([]frames.CloseCode(nil), o.violations...)
}

// On the client too, what the server receives in the client's CLOSE for a
// violation is what the observer is told: ProtocolError with that code,
// CloseInfo with that code and reason, by the local side. The limits come
// from Options.Config, which Run serves with.
func TestClientCloseInfoForServerViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		send []byte
		code frames.CloseCode
	}{
		{"masked text", []byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}, 1002},
		{"CLOSE with 1005", advClose(1005, ""), 1002},
		{"CLOSE with 1015", advClose(1015, ""), 1002},
		{"CLOSE of one byte", advFrame(0x88, []byte{0x03}), 1002},
		{"CLOSE reason not UTF-8", advClose(1000, "x\xff"), 1007},
		{"RSV2", advFrame(0xA2, []byte("x")), 1002},
		{"frame over MaxFrameSize", advFrame(0x82, make([]byte, 129)), 1009},
		{"message over MaxMessageSize", append(append(advFrame(0x02, make([]byte, 100)), advFrame(0x00, make([]byte, 100))...), advFrame(0x80, make([]byte, 100))...), 1009},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
				conn.Write(tc.send)
				advReadClient(br, r)
			})
			obs := newCLObserver()
			o := advOpts(wsconn.Config{Observer: obs, MaxFrameSize: 128, MaxMessageSize: 256, PingInterval: -1, CloseTimeout: time.Second})
			_, _, err := advRun(t, addr, o, true)
			if wsconn.CloseStatus(err) != tc.code {
				t.Fatalf("Run returned %v, want code %d", err, tc.code)
			}
			r := after(t, reports, "the server's report")
			if !r.gotClose || r.closeCode != tc.code {
				t.Fatalf("server got close %v with %d, want %d", r.gotClose, r.closeCode, tc.code)
			}
			info, violations := obs.wait(t)
			if info.Code != tc.code || info.Reason != r.closeText || info.By != wsconn.SideLocal {
				t.Errorf("CloseInfo %d %q by %v; the server received %d %q", info.Code, info.Reason, info.By, r.closeCode, r.closeText)
			}
			if len(violations) != 1 || violations[0] != tc.code {
				t.Errorf("ProtocolError codes %v, want [%d]", violations, tc.code)
			}
		})
	}
}

// Against real servers (gorilla, coder) that never send data: the
// client's IdleTimeout closes with 1001 "idle timeout", which the server
// receives, and the client's CloseInfo says the same, by the local side.
func TestClientIdleTimeoutAgainstRealServers(t *testing.T) {
	each(t, func(t *testing.T, p *peer) {
		const idle = 200 * time.Millisecond
		obs := newCLObserver()
		o := options()
		o.Config = &wsconn.Config{Logger: quiet, Observer: obs, IdleTimeout: idle, PingInterval: -1, CloseTimeout: time.Second}
		start := time.Now()
		err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			for range in.Messages(0) {
			}
			return in.Err()
		}, o)
		d := time.Since(start)
		if wsconn.CloseStatus(err) != frames.CloseGoingAway || d < idle || d > 3*time.Second {
			t.Fatalf("Run returned %v after %v, want 1001 after about %v", err, d, idle)
		}
		got := after(t, p.closes, "the server's close")
		if got.code != 1001 || got.reason != "idle timeout" {
			t.Fatalf("server received %d %q, want 1001 \"idle timeout\"", got.code, got.reason)
		}
		info, _ := obs.wait(t)
		if info.Code != frames.CloseGoingAway || info.Reason != "idle timeout" || info.By != wsconn.SideLocal {
			t.Fatalf("CloseInfo %d %q by %v, want 1001 \"idle timeout\" by local", info.Code, info.Reason, info.By)
		}
	})
}
