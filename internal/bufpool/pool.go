// Package bufpool keeps byte buffers in size classes so that the read and
// write paths can borrow memory per frame without allocating.
//
// Buffers are handed out as *[]byte so that putting them back into a
// sync.Pool does not allocate. A buffer larger than the biggest class is
// allocated on demand and dropped on Put, which bounds what the pools retain.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	minShift = 8  // smallest class: 256 bytes
	maxShift = 24 // largest class: 16 MiB
)

var pools [maxShift - minShift + 1]sync.Pool

// class returns the index of the smallest class holding n bytes, or -1 when
// n is larger than every class.
func class(n int) int {
	if n <= 1<<minShift {
		return 0
	}
	shift := bits.Len(uint(n - 1))
	if shift > maxShift {
		return -1
	}
	return shift - minShift
}

// Get returns a buffer with len n and a capacity of at least n. Its contents
// are unspecified.
func Get(n int) *[]byte {
	c := class(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if v := pools[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+minShift))
	return &b
}

// Put returns b to its class. Buffers whose capacity is not exactly a class
// size (grown elsewhere, or larger than the largest class) are dropped.
func Put(b *[]byte) {
	if b == nil {
		return
	}
	c := cap(*b)
	if c < 1<<minShift || c > 1<<maxShift || c&(c-1) != 0 {
		return
	}
	*b = (*b)[:0]
	pools[bits.Len(uint(c))-1-minShift].Put(b)
}

// Grow returns a buffer holding the contents of b with room for at least n
// bytes in total, putting b back when it had to move. A nil b is allowed.
func Grow(b *[]byte, n int) *[]byte {
	if b != nil && cap(*b) >= n {
		return b
	}
	size := n
	if b != nil && class(n) < 0 {
		// Past the largest class nothing is pooled: double, as append
		// does, so that a buffer grown piece by piece is not copied whole
		// for every piece.
		size = max(n, 2*cap(*b))
	}
	nb := Get(size)
	if b != nil {
		*nb = append((*nb)[:0], *b...)
		Put(b)
	} else {
		*nb = (*nb)[:0]
	}
	return nb
}
