// Package testlog captures what servers under test log, for colibri's
// tests to read while the servers still run.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that a logger may write to while a test reads
// it. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
