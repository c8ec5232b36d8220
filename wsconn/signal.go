package wsconn

import "sync/atomic"

// signal is a channel that is closed once, made only when somebody waits
// for it: most connections never wait for the end of their reading or
// writing side, and an unused channel would cost them 96 bytes each.
type signal struct {
	ch atomic.Pointer[chan struct{}]
}

var firedSignal = func() *chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return &ch
}()

// wait returns a channel that is closed once fire has been called.
func (s *signal) wait() <-chan struct{} {
	for {
		if p := s.ch.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if s.ch.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// fire closes the channel; later calls do nothing.
func (s *signal) fire() {
	if p := s.ch.Swap(firedSignal); p != nil && p != firedSignal {
		close(*p)
	}
}
