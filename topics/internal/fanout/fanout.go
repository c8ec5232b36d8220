// Package fanout measures topic fan-out for the benchmarks of topics and
// natsbroker: it serves many subscribers over in-memory pipes and records,
// for every message they receive, the time since it was published.
package fanout

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// epoch is the origin of the timestamps messages carry.
var epoch = time.Now()

// Stamp writes the current time into the first 8 bytes of p.
func Stamp(p []byte) {
	binary.BigEndian.PutUint64(p, uint64(time.Since(epoch)))
}

// Subscribers are n connections joined to one hub, each read by a client
// goroutine on the other end of a net.Pipe.
type Subscribers struct {
	group    group.Group
	clients  []net.Conn
	readers  sync.WaitGroup
	received atomic.Int64
	hist     Histogram

	// BytesPerMember is the memory that joining the hub and subscribing
	// added, per subscriber (heap and stacks): the member, its sender
	// task and its place in the trie.
	BytesPerMember float64
	// BytesPerConn is the memory of a whole subscriber before it joined:
	// the wsconn connection and the client goroutine reading the pipe.
	BytesPerConn float64
}

var quiet = slog.New(slog.DiscardHandler)

// Start serves n subscribers to filter on hub.
func Start(hub *topics.Hub, n int, filter string, opts *topics.MemberOptions) (*Subscribers, error) {
	s := &Subscribers{}
	// No write deadline: net.Pipe makes a timer for each one, which a TCP
	// connection does not, and the benchmarks would count it.
	cfg := &wsconn.Config{Logger: quiet, PingInterval: -1, WriteTimeout: -1, CloseTimeout: 100 * time.Millisecond}
	release := make(chan struct{})
	var joined, ready sync.WaitGroup
	var failed atomic.Value
	before := memory()
	for range n {
		srv, cli := net.Pipe()
		s.clients = append(s.clients, cli)
		joined.Add(1)
		ready.Add(1)
		ctx, err := s.group.Enter(context.Background())
		if err != nil {
			return nil, err
		}
		go func() {
			_ = wsconn.Serve(ctx, wsconn.Upgraded{Conn: srv}, struct{}{},
				func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *wsconn.Session[struct{}]) error {
					ready.Done()
					<-release
					m := hub.Join(sess.Conn, opts)
					err := m.Subscribe(filter)
					if err != nil {
						failed.Store(err)
					}
					joined.Done()
					if err != nil {
						return err
					}
					<-ctx.Done()
					return nil
				}, cfg)
		}()
		s.readers.Add(1)
		go s.read(cli)
	}
	ready.Wait()
	conns := memory()
	close(release)
	joined.Wait()
	if err, _ := failed.Load().(error); err != nil {
		s.Close()
		return nil, err
	}
	s.BytesPerConn = float64(conns-before) / float64(n)
	s.BytesPerMember = float64(memory()-conns) / float64(n)
	return s, nil
}

func memory() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// read is one client: it reads frames until the pipe closes and records
// the latency of each message.
func (s *Subscribers) read(nc net.Conn) {
	defer s.readers.Done()
	br := bufio.NewReaderSize(nc, 4096)
	var hb [frames.MaxHeaderSize]byte
	buf := make([]byte, 0, 1024)
	for {
		if _, err := io.ReadFull(br, hb[:2]); err != nil {
			return
		}
		n := frames.HeaderSize(hb[0], hb[1])
		if _, err := io.ReadFull(br, hb[2:n]); err != nil {
			return
		}
		h, err := frames.ParseHeader(hb[:n])
		if err != nil {
			return
		}
		if int64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		p := buf[:h.Length]
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		if h.Op != frames.OpBinary || len(p) < 8 {
			continue
		}
		sent := time.Duration(binary.BigEndian.Uint64(p))
		s.hist.Record(time.Since(epoch) - sent)
		s.received.Add(1)
	}
}

// Reset forgets the messages received so far.
func (s *Subscribers) Reset() {
	s.received.Store(0)
	for i := range s.hist.counts {
		s.hist.counts[i].Store(0)
	}
}

// Received returns the number of messages the subscribers received.
func (s *Subscribers) Received() int64 { return s.received.Load() }

// AwaitReceived waits until the subscribers received at least want
// messages in all, giving up after timeout.
func (s *Subscribers) AwaitReceived(want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for s.received.Load() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("fanout: %d of %d messages received", s.received.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return nil
}

// Latency returns the q-quantile of the publish-to-receive latency.
func (s *Subscribers) Latency(q float64) time.Duration { return s.hist.Quantile(q) }

// Close disconnects every subscriber and waits for all their goroutines.
func (s *Subscribers) Close() error {
	for _, c := range s.clients {
		_ = c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.group.Shutdown(ctx)
	s.readers.Wait()
	if errors.Is(err, group.ErrIncomplete) {
		return err
	}
	return nil
}

// Histogram counts durations in buckets about 6% wide, from 1 ns to
// hours, without locks or allocation.
type Histogram struct {
	counts [64 * 16]atomic.Int64
}

func bucket(v uint64) int {
	if v < 16 {
		return int(v)
	}
	e := bits.Len64(v) // 5..64
	return (e-4)*16 + int(v>>(e-5))&15
}

func bucketLow(i int) uint64 {
	if i < 16 {
		return uint64(i)
	}
	e := i/16 + 4
	return (16 | uint64(i%16)) << (e - 5)
}

// Record counts d.
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucket(uint64(max(d, 0)))].Add(1)
}

// Quantile returns the lower bound of the bucket that holds the
// q-quantile, or 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	var total int64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := int64(q * float64(total))
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen > rank {
			return time.Duration(bucketLow(i))
		}
	}
	return time.Duration(bucketLow(len(h.counts) - 1))
}
