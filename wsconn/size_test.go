package wsconn

import (
	"testing"
	"unsafe"
)

// TestConnRecordFitsItsSizeClass: the connection record stays within the
// runtime's 1,024-byte size class, as docs/architecture.md ("Idle
// memory") and docs/performance.md say; the next class is 1,152 bytes, an
// eighth of a KiB more for every connection.
func TestConnRecordFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 1024 {
		t.Fatalf("Conn is %d bytes, past the 1,024-byte size class: put small fields together, or update the docs", n)
	}
}
