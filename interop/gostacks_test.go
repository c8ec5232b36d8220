package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
)

// The Go clients run in the test process, behind the same commands as the
// scripts: a goroutine reads the connection and queues what it gets.

// events is the inbound side of an in-process driver: messages in order,
// then the close, which every later recv gets again.
type events struct {
	ch   chan result
	last *result
}

func newEvents() events { return events{ch: make(chan result, 1024)} }

func (e *events) next() (result, error) {
	if e.last != nil {
		return *e.last, nil
	}
	select {
	case r := <-e.ch:
		if r.Event == "close" {
			e.last = &r
		}
		return r, nil
	case <-time.After(commandTimeout):
		return result{}, fmt.Errorf("nothing arrived within %v", commandTimeout)
	}
}

// untilClose skips messages up to the close.
func (e *events) untilClose() (result, error) {
	for {
		r, err := e.next()
		if err != nil || r.Event == "close" {
			return r, err
		}
	}
}

func message(binary bool, p []byte) result {
	r := result{OK: true, Event: "message", Kind: "text", Size: len(p), SHA256: hexSum(p)}
	if binary {
		r.Kind = "binary"
	} else if len(p) <= 4096 {
		r.Text = string(p)
	}
	return r
}

// moduleVersion returns the version of module path that go.mod requires.
func moduleVersion(path string) string {
	b, err := os.ReadFile("../go.mod")
	if err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == path {
				return f[1]
			}
		}
	}
	return "(version unknown)"
}

var gorillaStack = func() *stack {
	return &stack{name: "gorilla", version: "gorilla/websocket " + moduleVersion("github.com/gorilla/websocket"),
		can: abilities{invalidUTF8: true, fragments: true, splitRunes: true, ping: true},
		offer: func(want *deflateOffer) *deflateOffer {
			if want == nil {
				return nil
			}
			return &deflateOffer{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
		},
		open: func(t *testing.T) driver { return &gorillaDriver{ev: newEvents(), pongs: make(chan string, 1)} },
	}
}

type gorillaDriver struct {
	c     *gorilla.Conn
	ev    events
	pongs chan string
	done  chan struct{}
}

func (d *gorillaDriver) do(c command) (result, error) {
	ok := result{OK: true}
	switch c.Op {
	case opConnect:
		dl := gorilla.Dialer{Subprotocols: c.Protocols, EnableCompression: c.Deflate != nil, HandshakeTimeout: 10 * time.Second,
			WriteBufferSize: 4096}
		conn, resp, err := dl.Dial(c.URL, nil)
		if err != nil {
			return result{Error: err.Error()}, nil
		}
		d.c, d.done = conn, make(chan struct{})
		conn.SetPongHandler(func(s string) error { d.pongs <- s; return nil })
		go d.read()
		return result{OK: true, Protocol: conn.Subprotocol(), Extensions: resp.Header.Get("Sec-WebSocket-Extensions")}, nil
	case opSend:
		return ok, d.c.WriteMessage(gorillaType(c.Kind), payload(c.Kind, c.Size))
	case opSendText:
		return ok, d.c.WriteMessage(gorilla.TextMessage, []byte(c.Text))
	case opFragments:
		// gorilla sends a frame each time its 4 KiB buffer fills.
		w, err := d.c.NextWriter(gorillaType(c.Kind))
		if err != nil {
			return result{}, err
		}
		p := payload(c.Kind, sumOf(c.Sizes))
		for _, n := range c.Sizes {
			_, _ = w.Write(p[:n])
			p = p[n:]
		}
		return ok, w.Close()
	case opInvalidUTF8:
		return ok, d.c.WriteMessage(gorilla.TextMessage, []byte("ok \xff"))
	case opRecv:
		return d.ev.next()
	case opPing:
		if err := d.c.WriteControl(gorilla.PingMessage, []byte(c.Data), time.Now().Add(5*time.Second)); err != nil {
			return result{}, err
		}
		select {
		case p := <-d.pongs:
			return result{OK: true, Pong: p}, nil
		case <-time.After(commandTimeout):
			return result{}, errors.New("no pong")
		}
	case opClose:
		if err := d.c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(c.Code, c.Reason), time.Now().Add(5*time.Second)); err != nil {
			return result{}, err
		}
		return d.ev.untilClose()
	case opExit:
		d.stop()
		return ok, nil
	}
	return result{Error: "gorilla cannot " + c.Op}, nil
}

func (d *gorillaDriver) read() {
	defer close(d.done)
	for {
		typ, p, err := d.c.ReadMessage()
		if err != nil {
			// 1006 with the error as the reason, for the failure message.
			r := result{OK: true, Event: "close", Code: 1006, Reason: err.Error()}
			if ce, ok := errors.AsType[*gorilla.CloseError](err); ok {
				r.Code, r.Reason = ce.Code, ce.Text
			}
			d.ev.ch <- r
			return
		}
		d.ev.ch <- message(typ == gorilla.BinaryMessage, p)
	}
}

func (d *gorillaDriver) stop() {
	if d.c != nil {
		_ = d.c.Close()
		<-d.done
		d.c = nil
	}
}

func gorillaType(kind string) int {
	if kind == "binary" {
		return gorilla.BinaryMessage
	}
	return gorilla.TextMessage
}

var coderStack = func() *stack {
	return &stack{name: "coder", version: "coder/websocket " + moduleVersion("github.com/coder/websocket"),
		can: abilities{invalidUTF8: true, fragments: true, splitRunes: true, ping: true},
		offer: func(want *deflateOffer) *deflateOffer {
			switch {
			case want == nil:
				return nil
			case want.ServerNoContextTakeover || want.ClientNoContextTakeover:
				return &deflateOffer{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
			}
			return &deflateOffer{}
		},
		open: func(t *testing.T) driver { return &coderDriver{ev: newEvents()} },
	}
}

type coderDriver struct {
	c      *coder.Conn
	ev     events
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func (d *coderDriver) do(c command) (result, error) {
	ok := result{OK: true}
	switch c.Op {
	case opConnect:
		mode := coder.CompressionDisabled
		if o := coderStack().offer(c.Deflate); o != nil {
			mode = coder.CompressionContextTakeover
			if o.ServerNoContextTakeover {
				mode = coder.CompressionNoContextTakeover
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, resp, err := coder.Dial(ctx, c.URL, &coder.DialOptions{Subprotocols: c.Protocols, CompressionMode: mode,
			HTTPClient: &http.Client{Transport: &http.Transport{}}})
		if err != nil {
			return result{Error: err.Error()}, nil
		}
		conn.SetReadLimit(64 << 20)
		d.c, d.done = conn, make(chan struct{})
		d.ctx, d.cancel = context.WithCancel(context.Background())
		go d.read()
		return result{OK: true, Protocol: conn.Subprotocol(), Extensions: resp.Header.Get("Sec-WebSocket-Extensions")}, nil
	case opSend:
		return ok, d.c.Write(d.ctx, coderType(c.Kind), payload(c.Kind, c.Size))
	case opSendText:
		return ok, d.c.Write(d.ctx, coder.MessageText, []byte(c.Text))
	case opFragments:
		// coder sends a frame per Write.
		w, err := d.c.Writer(d.ctx, coderType(c.Kind))
		if err != nil {
			return result{}, err
		}
		p := payload(c.Kind, sumOf(c.Sizes))
		for _, n := range c.Sizes {
			_, _ = w.Write(p[:n])
			p = p[n:]
		}
		return ok, w.Close()
	case opInvalidUTF8:
		return ok, d.c.Write(d.ctx, coder.MessageText, []byte("ok \xff"))
	case opRecv:
		return d.ev.next()
	case opPing:
		// coder chooses the payload and checks the PONG against it.
		ctx, cancel := context.WithTimeout(d.ctx, commandTimeout)
		defer cancel()
		if err := d.c.Ping(ctx); err != nil {
			return result{}, err
		}
		return result{OK: true, Pong: c.Data}, nil
	case opClose:
		cerr := d.c.Close(coder.StatusCode(c.Code), c.Reason)
		r, err := d.ev.untilClose()
		if cerr == nil && r.Code == 1006 && strings.Contains(r.Reason, net.ErrClosed.Error()) {
			// Close read the server's CLOSE itself, before the read loop
			// could, and closed the connection under it. Close returns nil
			// only when that CLOSE carried the code it sent; colibri echoes
			// the reason with the code.
			r.Code, r.Reason = c.Code, c.Reason
		}
		return r, err
	case opExit:
		d.stop()
		return ok, nil
	}
	return result{Error: "coder cannot " + c.Op}, nil
}

func (d *coderDriver) read() {
	defer close(d.done)
	for {
		typ, p, err := d.c.Read(d.ctx)
		if err != nil {
			r := result{OK: true, Event: "close", Code: 1006, Reason: err.Error()}
			if ce, ok := errors.AsType[coder.CloseError](err); ok {
				r.Code, r.Reason = int(ce.Code), ce.Reason
			}
			d.ev.ch <- r
			return
		}
		d.ev.ch <- message(typ == coder.MessageBinary, p)
	}
}

func (d *coderDriver) stop() {
	if d.c != nil {
		_ = d.c.CloseNow()
		d.cancel()
		<-d.done
		d.c = nil
	}
}

func coderType(kind string) coder.MessageType {
	if kind == "binary" {
		return coder.MessageBinary
	}
	return coder.MessageText
}

func sumOf(sizes []int) int {
	n := 0
	for _, s := range sizes {
		n += s
	}
	return n
}
