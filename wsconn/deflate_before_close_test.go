package wsconn_test

import (
	"fmt"
	"time"

	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvdSendThenClose sends, in one write, the frames a client builds, then its
// CLOSE 1000, to a handler that never ranges (the background reader
// meets them all), and returns the code of the server's CLOSE.
func rvdSendThenClose(t *testing.T, build func(c *cmpRaw) [][]byte) frames.CloseCode {
	t.Helper()
	url := cmpServe(t, cmpRoute{path: "/", cfg: cmpOn(wsconn.Compression{}), h: drvWriteOnly})
	c := cmpDial(t, url+"/", "permessage-deflate")
	var b []byte
	for _, f := range build(c) {
		b = append(b, f...)
	}
	b = append(b, rvdFrame(frames.OpClose, true, 0, closePayload(frames.CloseNormal, ""))...)
	c.write(b)
	for {
		h, p := c.read()
		if h.Op != frames.OpClose {
			continue
		}
		code, _, _ := frames.ParseClose(p)
		return code
	}
}

// rvdFrame is one masked client frame.
func rvdFrame(op frames.Opcode, fin bool, rsv byte, p []byte) []byte {
	return maskedFrame(frames.Header{Op: op, Fin: fin, Rsv: rsv, Mask: [4]byte{1, 2, 3, 4}}, p)
}

// TestDeflateViolationBeforeCloseGetsItsCode: docs/handlers.md
// ("Reading") promises that data the peer sent just before its CLOSE is
// judged before the CLOSE is answered, "so that a violation in it gets its
// own code (1007, 1002) rather than the peer's", also while no loop
// ranges. With permessage-deflate the header checks hold too; a
// compressed payload is the documented exception, judged only by a loop.
func TestDeflateViolationBeforeCloseGetsItsCode(t *testing.T) {
	t.Run("control: uncompressed invalid UTF-8", func(t *testing.T) {
		code := rvdSendThenClose(t, func(*cmpRaw) [][]byte {
			return [][]byte{rvdFrame(frames.OpText, true, 0, []byte{0xff, 0xfe})}
		})
		if code != frames.CloseInvalidPayload {
			t.Fatalf("got CLOSE %v, want 1007", code)
		}
	})
	t.Run("RSV1 on a continuation frame", func(t *testing.T) {
		z := cmpCompress([]byte("hello, hello, hello"))
		code := rvdSendThenClose(t, func(*cmpRaw) [][]byte {
			return [][]byte{
				rvdFrame(frames.OpText, false, frames.Rsv1, z[:3]),
				rvdFrame(frames.OpContinuation, true, frames.Rsv1, z[3:]),
			}
		})
		if code != frames.CloseProtocolError {
			t.Fatalf("got CLOSE %v, want 1002", code)
		}
	})
	// The documented exception: a compressed payload is inflated, and
	// checked, only as a loop reads it, so without a loop the peer's
	// CLOSE is answered with its own code.
	t.Run("compressed text not UTF-8", func(t *testing.T) {
		code := rvdSendThenClose(t, func(*cmpRaw) [][]byte {
			return [][]byte{rvdFrame(frames.OpText, true, frames.Rsv1, cmpCompress([]byte{'a', 0xff, 0xfe, 'b'}))}
		})
		if code != frames.CloseNormal {
			t.Fatalf("got CLOSE %v, want the peer's 1000 (compressed text is judged by a loop)", code)
		}
	})
	t.Run("data that does not inflate", func(t *testing.T) {
		code := rvdSendThenClose(t, func(*cmpRaw) [][]byte {
			// BTYPE 11 is reserved: not deflate data.
			return [][]byte{rvdFrame(frames.OpBinary, true, frames.Rsv1, []byte{0x07, 0x00, 0x00})}
		})
		if code != frames.CloseNormal {
			t.Fatalf("got CLOSE %v, want the peer's 1000 (a compressed payload is inflated by a loop)", code)
		}
	})
}

// TestDeflateRsv1NotNegotiatedBehindKeptData: RSV1 on a data frame
// when permessage-deflate was not negotiated must fail the connection
// with 1002 (RFC 6455 §5.2, RFC 7692 §6), and colibri "answers the peer's
// CLOSE without waiting for the handler" (docs/closing.md). Here the
// handler never ranges, the RSV1 frame comes right behind a valid frame
// (so the background reader meets it away from a frame boundary) and the
// peer's CLOSE follows: nothing comes back at all, neither the 1002 nor
// an answer to the CLOSE, until keep-alive gives up (50 s by default).
// The control case, the same RSV1 frame first, gets its 1002 at once.
func TestDeflateRsv1NotNegotiatedBehindKeptData(t *testing.T) {
	url := cmpServe(t, cmpRoute{path: "/", h: drvWriteOnly})
	outcome := func(t *testing.T, first bool) string {
		c := cmpDial(t, url+"/")
		if c.answer() != "" {
			t.Fatalf("negotiated %q", c.answer())
		}
		bad := rvdFrame(frames.OpBinary, true, frames.Rsv1, []byte("b"))
		var b []byte
		if !first {
			b = rvdFrame(frames.OpBinary, true, 0, []byte("a"))
		}
		b = append(b, bad...)
		b = append(b, rvdFrame(frames.OpClose, true, 0, closePayload(frames.CloseNormal, ""))...)
		c.write(b)
		_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
		for {
			h, p, err := readFrame(c.br)
			if err != nil {
				return "nothing within 1 s (" + err.Error() + ")"
			}
			if h.Op == frames.OpClose {
				code, _, _ := frames.ParseClose(p)
				return fmt.Sprint(int(code))
			}
		}
	}
	t.Run("control: RSV1 frame first", func(t *testing.T) {
		if got := outcome(t, true); got != "1002" {
			t.Fatalf("got %s, want CLOSE 1002", got)
		}
	})
	t.Run("RSV1 frame behind a kept frame", func(t *testing.T) {
		if got := outcome(t, false); got != "1002" {
			t.Fatalf("got %s, want CLOSE 1002", got)
		}
	})
}
