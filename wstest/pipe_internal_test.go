package wstest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

func TestPipeBothEndsWriteAtOnce(t *testing.T) {
	// net.Pipe would deadlock here: each side writes before reading.
	a, b := newMemConns("server:80", 1)
	defer a.Close()
	defer b.Close()
	big := bytes.Repeat([]byte("w"), pipeBuffer/2)
	var wg sync.WaitGroup
	for _, c := range []*memConn{a, b} {
		wg.Go(func() {
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(big); err != nil {
				t.Errorf("write: %v", err)
			}
		})
	}
	wg.Wait()
	for _, c := range []*memConn{a, b} {
		got := make([]byte, len(big))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("read back: %v", err)
		}
	}
}

func TestPipeWriteWaitsForRoomAndHonoursDeadline(t *testing.T) {
	a, b := newMemConns("server:80", 1)
	defer a.Close()
	defer b.Close()
	_ = a.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
	n, err := a.Write(make([]byte, pipeBuffer+10))
	var ne net.Error
	if n != pipeBuffer || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write into a full pipe: %d bytes, %v", n, err)
	}

	// A reader makes room, and a writer without deadline goes on.
	_ = a.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(make([]byte, 100))
		done <- err
	}()
	if _, err := io.ReadFull(b, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write after the reader made room: %v", err)
	}
}

func TestPipeDeadlineInterruptsBlockedRead(t *testing.T) {
	a, b := newMemConns("server:80", 1)
	defer a.Close()
	defer b.Close()
	errs := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		errs <- err
	}()
	time.Sleep(10 * time.Millisecond)
	// A deadline in the past wakes a blocked reader, as net/http and wsconn
	// rely on.
	_ = a.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-errs:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline in the past did not wake the reader")
	}
	// Clearing the deadline makes the connection usable again.
	_ = a.SetReadDeadline(time.Time{})
	if _, err := b.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(a, got); err != nil || string(got) != "ok" {
		t.Fatalf("read after clearing the deadline: %q %v", got, err)
	}
	// A deadline in the future fires by itself.
	_ = a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := a.Read(got); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past a deadline: %v", err)
	}
}

func TestPipeCloseWriteIsAHalfClose(t *testing.T) {
	a, b := newMemConns("server:80", 1)
	defer a.Close()
	defer b.Close()
	if _, err := a.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("write after CloseWrite succeeded")
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "last words" {
		t.Fatalf("peer read %q, %v; want the bytes, then EOF", got, err)
	}
	// The other direction still works.
	if _, err := b.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 5)
	if _, err := io.ReadFull(a, reply); err != nil || string(reply) != "reply" {
		t.Fatalf("reply %q %v", reply, err)
	}
}

func TestPipeClose(t *testing.T) {
	a, b := newMemConns("server:80", 1)
	defer b.Close()
	if _, err := a.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		blocked <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a read blocked in Close returned %v", err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed end: %v", err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "bye" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if _, err := b.Write([]byte("anyone?")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to a closed peer: %v", err)
	}
	if a.LocalAddr().Network() != "memory" || a.RemoteAddr().String() != "server:80" || b.RemoteAddr() != a.LocalAddr() {
		t.Fatalf("addresses %v -> %v, %v -> %v", a.LocalAddr(), a.RemoteAddr(), b.LocalAddr(), b.RemoteAddr())
	}
}

func TestMemListener(t *testing.T) {
	l := newMemListener("server:80")
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := l.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil || s.RemoteAddr() != c.LocalAddr() {
		t.Fatal("the listener did not hand over the dialed connection")
	}
	c.Close()
	s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.dial(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial with nobody accepting: %v", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if _, err := l.dial(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("dial after close: %v", err)
	}
}
