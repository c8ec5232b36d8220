package wsclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// scScenario is one client's part in a race.
type scScenario struct {
	ret         int           // 0 nil, 1 error, 2 *CloseError 4002, 3 wait for ctx, 4 range Messages
	retAfter    time.Duration // for 0-2
	cancelAfter time.Duration // <0: the Run context is not cancelled
	outClose    time.Duration // <0: no out.Close(4003)
	writer      bool          // a goroutine outside the group writes long messages
	taskWriter  bool          // a task writes long messages
}

// scRun runs one client scenario against one server plan and returns
// what is wrong, or "".
func scRun(t *testing.T, addr string, plans chan scPlan, wires <-chan *scWire, plan scPlan, sc scScenario, tally map[string]int) string {
	t.Helper()
	obs := &scObserver{}
	var conn *scConn
	o := options()
	o.Config = &wsconn.Config{Logger: quiet, Observer: obs, CloseTimeout: 2 * time.Second}
	o.NetDial = func(ctx context.Context, network, a string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, a)
		if err != nil {
			return nil, err
		}
		conn = &scConn{TCPConn: nc.(*net.TCPConn)}
		return conn, nil
	}
	plans <- plan
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("x"), 200<<10)
	var outside sync.WaitGroup
	err := wsclient.Run(ctx, "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if sc.cancelAfter >= 0 {
			stop := time.AfterFunc(sc.cancelAfter, cancel)
			defer stop.Stop()
		}
		if sc.writer {
			outside.Go(func() {
				for out.WriteBinary(context.Background(), big) == nil {
				}
			})
		}
		if sc.taskWriter {
			_ = s.Go(func(ctx context.Context) error {
				for out.WriteBinary(ctx, big) == nil {
				}
				return nil
			})
		}
		if sc.outClose >= 0 {
			outside.Go(func() {
				time.Sleep(sc.outClose)
				_ = out.Close(4003, "oc")
			})
		}
		switch sc.ret {
		case 0, 1, 2:
			select {
			case <-time.After(sc.retAfter):
			case <-ctx.Done():
			}
			switch sc.ret {
			case 1:
				return errors.New("handler failed")
			case 2:
				return &wsconn.CloseError{Code: 4002, Reason: "cli"}
			}
			return nil
		case 3:
			<-ctx.Done()
			return context.Cause(ctx)
		}
		for range in.Messages(0) {
		}
		return in.Err()
	}, o)
	outside.Wait()
	if conn == nil {
		<-plans
		return "dial failed: " + errString(err)
	}
	w := <-wires
	if tally != nil {
		w.mu.Lock()
		obs.mu.Lock()
		tally[fmt.Sprintf("clean=%v by=%v code=%d", w.clean, obs.info.By, obs.info.Code)]++
		obs.mu.Unlock()
		w.mu.Unlock()
	}
	return scCheck(w, conn, obs)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// scRandom draws a scenario and a plan that end by themselves.
func scRandom(r *rand.Rand) (scPlan, scScenario) {
	d := func() time.Duration { return time.Duration(r.IntN(3000)) * time.Microsecond }
	plan := scPlan{closeAfter: -1, data: r.IntN(2) == 0, hold: 20 * time.Millisecond}
	if r.IntN(3) > 0 {
		plan.closeAfter = d()
	}
	sc := scScenario{ret: r.IntN(5), retAfter: d(), cancelAfter: -1, outClose: -1, writer: r.IntN(3) == 0, taskWriter: r.IntN(4) == 0}
	if r.IntN(3) == 0 {
		sc.cancelAfter = d()
	}
	if r.IntN(3) == 0 {
		sc.outClose = d()
	}
	if plan.closeAfter < 0 && sc.ret >= 3 && sc.cancelAfter < 0 && sc.outClose < 0 {
		sc.ret = 0
	}
	return plan, sc
}

// TestStressClientClosingRandomRaces draws 100 races between the server's
// CLOSE, the handler's return, the Run context's end, writers of long
// messages and out.Close, and checks the client's side of the closing
// handshake on the wire and in CloseInfo.
func TestStressClientClosingRandomRaces(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 7))
	plans := make(chan scPlan, 1)
	addr, wires := scServer(t, plans)
	fails, tally := 0, map[string]int{}
	for i := range 100 {
		plan, sc := scRandom(r)
		if msg := scRun(t, addr, plans, wires, plan, sc, tally); msg != "" {
			fails++
			t.Errorf("seed %d run %d plan %+v scenario %+v: %s", seed, i, plan, sc, msg)
		}
	}
	t.Logf("%d/100 failed; outcomes %v", fails, tally)
}
