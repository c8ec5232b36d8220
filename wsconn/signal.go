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

// token is a lock that its waiters can give up on: they wait in a select,
// next to their other reasons to stop. It is two words; its channel is
// made only when somebody has to wait, so that a token nobody contends
// costs no allocation (a one-slot channel would cost 96 bytes).
type token struct {
	held atomic.Bool
	free atomic.Pointer[chan struct{}] // closed at the next give; made by a waiter
}

// take takes the token if it is free.
func (t *token) take() bool { return t.held.CompareAndSwap(false, true) }

// give frees the token and wakes its waiters, who try to take it again.
func (t *token) give() {
	t.held.Store(false)
	if p := t.free.Swap(nil); p != nil {
		close(*p)
	}
}

// given returns a channel that is closed once the token may be free; the
// caller then tries take again, since another waiter may be faster.
func (t *token) given() <-chan struct{} {
	p := t.free.Load()
	if p == nil {
		ch := make(chan struct{})
		if t.free.CompareAndSwap(nil, &ch) {
			p = &ch
		} else if p = t.free.Load(); p == nil {
			return *firedSignal // a give took it meanwhile: try again
		}
	}
	if !t.held.Load() {
		// Freed before the channel was in place: give may not close it.
		return *firedSignal
	}
	return *p
}
