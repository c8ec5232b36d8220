package frames_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

func TestCloseCode(t *testing.T) {
	tests := []struct {
		code  frames.CloseCode
		valid bool
		name  string
	}{
		{code: 0, name: "0 (unused)"},
		{code: 999, name: "999 (unused)"},
		{code: 1000, valid: true, name: "1000 normal closure"},
		{code: 1001, valid: true, name: "1001 going away"},
		{code: 1002, valid: true, name: "1002 protocol error"},
		{code: 1003, valid: true, name: "1003 unsupported data"},
		{code: 1004, name: "1004 (reserved)"},
		{code: 1005, name: "1005 no status received"},
		{code: 1006, name: "1006 abnormal closure"},
		{code: 1007, valid: true, name: "1007 invalid payload data"},
		{code: 1008, valid: true, name: "1008 policy violation"},
		{code: 1009, valid: true, name: "1009 message too big"},
		{code: 1010, valid: true, name: "1010 mandatory extension"},
		{code: 1011, valid: true, name: "1011 internal error"},
		{code: 1012, valid: true, name: "1012 service restart"},
		{code: 1013, valid: true, name: "1013 try again later"},
		{code: 1014, valid: true, name: "1014 bad gateway"},
		{code: 1015, name: "1015 TLS handshake failure"},
		{code: 1016, name: "1016 (reserved)"},
		{code: 2999, name: "2999 (reserved)"},
		{code: 3000, valid: true, name: "3000 (registered)"},
		{code: 3999, valid: true, name: "3999 (registered)"},
		{code: 4000, valid: true, name: "4000 (application)"},
		{code: 4999, valid: true, name: "4999 (application)"},
		{code: 5000, name: "5000 (out of range)"},
		{code: 65535, name: "65535 (out of range)"},
	}
	for _, tt := range tests {
		if got := tt.code.Valid(); got != tt.valid {
			t.Errorf("CloseCode(%d).Valid() = %v, want %v", uint16(tt.code), got, tt.valid)
		}
		if got := tt.code.String(); got != tt.name {
			t.Errorf("CloseCode(%d).String() = %q, want %q", uint16(tt.code), got, tt.name)
		}
	}
}

func TestCloseCodeConstants(t *testing.T) {
	// The constants must carry the numbers of RFC 6455 §7.4.1 and the IANA
	// registry; a typo here would put a wrong code on the wire.
	tests := []struct {
		code frames.CloseCode
		want uint16
	}{
		{code: frames.CloseNormal, want: 1000},
		{code: frames.CloseGoingAway, want: 1001},
		{code: frames.CloseProtocolError, want: 1002},
		{code: frames.CloseUnsupportedData, want: 1003},
		{code: frames.CloseNoStatus, want: 1005},
		{code: frames.CloseAbnormal, want: 1006},
		{code: frames.CloseInvalidPayload, want: 1007},
		{code: frames.ClosePolicyViolation, want: 1008},
		{code: frames.CloseMessageTooBig, want: 1009},
		{code: frames.CloseMandatoryExtension, want: 1010},
		{code: frames.CloseInternalError, want: 1011},
		{code: frames.CloseServiceRestart, want: 1012},
		{code: frames.CloseTryAgainLater, want: 1013},
		{code: frames.CloseBadGateway, want: 1014},
		{code: frames.CloseTLSHandshake, want: 1015},
	}
	for _, tt := range tests {
		if uint16(tt.code) != tt.want {
			t.Errorf("%v = %d, want %d", tt.code, uint16(tt.code), tt.want)
		}
	}
}

func TestCloseCodeValidEveryValue(t *testing.T) {
	// Valid must agree with the ranges of RFC 6455 §7.4 for every uint16.
	for c := range 1 << 16 {
		want := (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999)
		if got := frames.CloseCode(c).Valid(); got != want {
			t.Fatalf("CloseCode(%d).Valid() = %v, want %v", c, got, want)
		}
	}
}

var (
	reason123 = strings.Repeat("r", 123)
	reason124 = strings.Repeat("r", 124)
	// 41 three-byte runes: 123 bytes, the limit counts bytes, not runes.
	runes123 = strings.Repeat("€", 41)
)

func TestAppendClose(t *testing.T) {
	tests := []struct {
		name   string
		code   frames.CloseCode
		reason string
		want   []byte // nil when an error is expected
		err    error
	}{
		{name: "no status, no reason: empty payload", code: frames.CloseNoStatus, want: []byte{}},
		{name: "normal", code: frames.CloseNormal, want: []byte{0x03, 0xE8}},
		{name: "with reason", code: frames.CloseGoingAway, reason: "bye", want: []byte{0x03, 0xE9, 'b', 'y', 'e'}},
		{name: "application code", code: 4000, reason: "x", want: []byte{0x0F, 0xA0, 'x'}},
		{name: "registered code", code: 3000, want: []byte{0x0B, 0xB8}},
		{name: "last IANA code", code: frames.CloseBadGateway, want: []byte{0x03, 0xF6}},
		{name: "reason of 123 bytes", code: frames.CloseNormal, reason: reason123, want: append([]byte{0x03, 0xE8}, reason123...)},
		{name: "reason of 123 bytes in 41 runes", code: frames.CloseNormal, reason: runes123, want: append([]byte{0x03, 0xE8}, runes123...)},
		{name: "reason of 124 bytes", code: frames.CloseNormal, reason: reason124, err: frames.ErrCloseReasonTooLong},
		{name: "reason of 124 bytes in 41 runes and one byte", code: frames.CloseNormal, reason: runes123 + "!", err: frames.ErrCloseReasonTooLong},
		{name: "invalid UTF-8 reason", code: frames.CloseNormal, reason: "bad \xff", err: frames.ErrInvalidCloseReason},
		{name: "surrogate in reason", code: frames.CloseNormal, reason: "\xed\xa0\x80", err: frames.ErrInvalidCloseReason},
		{name: "no status with a reason", code: frames.CloseNoStatus, reason: "x", err: frames.ErrInvalidCloseCode},
		{name: "abnormal", code: frames.CloseAbnormal, err: frames.ErrInvalidCloseCode},
		{name: "TLS handshake", code: frames.CloseTLSHandshake, err: frames.ErrInvalidCloseCode},
		{name: "reserved 1004", code: 1004, err: frames.ErrInvalidCloseCode},
		{name: "unused 0", code: 0, err: frames.ErrInvalidCloseCode},
		{name: "unused 999", code: 999, err: frames.ErrInvalidCloseCode},
		{name: "reserved 1016", code: 1016, err: frames.ErrInvalidCloseCode},
		{name: "reserved 2999", code: 2999, err: frames.ErrInvalidCloseCode},
		{name: "out of range 5000", code: 5000, err: frames.ErrInvalidCloseCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			got, err := frames.AppendClose(prefix, tt.code, tt.reason)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("AppendClose error = %v, want %v", err, tt.err)
				}
				// The caller passed the bad arguments, not the peer, so
				// the error must not ask for a protocol-error close.
				if code, ok := frames.CodeOf(err); ok {
					t.Errorf("CodeOf(AppendClose error) = %v, true; want false", code)
				}
				if !strings.HasPrefix(err.Error(), "frames: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				if !bytes.Equal(got, prefix) {
					t.Errorf("AppendClose changed dst on error: %q", got)
				}
				if _, err := frames.Close(tt.code, tt.reason); !errors.Is(err, tt.err) {
					t.Errorf("Close error = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AppendClose: %v", err)
			}
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], tt.want) {
				t.Fatalf("AppendClose = % x, want prefix and % x", got, tt.want)
			}
			f, err := frames.Close(tt.code, tt.reason)
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
			if f.Op != frames.OpClose || !f.Fin || f.Rsv != 0 || !bytes.Equal(f.Payload, tt.want) {
				t.Errorf("Close = %+v, want a final close frame with payload % x", f, tt.want)
			}
			code, reason, err := frames.ParseClose(tt.want)
			if err != nil || code != tt.code || reason != tt.reason {
				t.Errorf("ParseClose(AppendClose) = %v, %q, %v; want %v, %q, nil", code, reason, err, tt.code, tt.reason)
			}
		})
	}
}

func TestParseClose(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		code    frames.CloseCode
		reason  string
		err     error
	}{
		{name: "empty", payload: nil, code: frames.CloseNoStatus},
		{name: "one byte", payload: []byte{0x03}, err: frames.ErrClosePayload},
		{name: "normal", payload: []byte{0x03, 0xE8}, code: frames.CloseNormal},
		{name: "with reason", payload: []byte{0x03, 0xE9, 'o', 'k'}, code: frames.CloseGoingAway, reason: "ok"},
		{name: "UTF-8 reason", payload: append([]byte{0x03, 0xE8}, "κόσμε"...), code: frames.CloseNormal, reason: "κόσμε"},
		{name: "reason of 123 bytes", payload: append([]byte{0x03, 0xE8}, reason123...), code: frames.CloseNormal, reason: reason123},
		{name: "reason of 124 bytes", payload: append([]byte{0x03, 0xE8}, reason124...), code: frames.CloseNormal, err: frames.ErrCloseReasonTooLong},
		{name: "invalid UTF-8 reason", payload: []byte{0x03, 0xE8, 'a', 0xC0, 0x80}, code: frames.CloseNormal, err: frames.ErrInvalidCloseReason},
		{name: "truncated rune in reason", payload: []byte{0x03, 0xE8, 0xE2, 0x82}, code: frames.CloseNormal, err: frames.ErrInvalidCloseReason},
		{name: "code 0", payload: []byte{0x00, 0x00}, code: 0, err: frames.ErrInvalidCloseCode},
		{name: "code 999", payload: []byte{0x03, 0xE7}, code: 999, err: frames.ErrInvalidCloseCode},
		{name: "code 1004", payload: []byte{0x03, 0xEC}, code: 1004, err: frames.ErrInvalidCloseCode},
		{name: "code 1005 on the wire", payload: []byte{0x03, 0xED}, code: 1005, err: frames.ErrInvalidCloseCode},
		{name: "code 1006 on the wire", payload: []byte{0x03, 0xEE}, code: 1006, err: frames.ErrInvalidCloseCode},
		{name: "code 1015 on the wire", payload: []byte{0x03, 0xF7}, code: 1015, err: frames.ErrInvalidCloseCode},
		{name: "code 1016", payload: []byte{0x03, 0xF8}, code: 1016, err: frames.ErrInvalidCloseCode},
		{name: "code 2999", payload: []byte{0x0B, 0xB7}, code: 2999, err: frames.ErrInvalidCloseCode},
		{name: "code 3000", payload: []byte{0x0B, 0xB8}, code: 3000},
		{name: "code 4999", payload: []byte{0x13, 0x87}, code: 4999},
		{name: "code 5000", payload: []byte{0x13, 0x88}, code: 5000, err: frames.ErrInvalidCloseCode},
		{name: "code 65535", payload: []byte{0xFF, 0xFF}, code: 65535, err: frames.ErrInvalidCloseCode},
		{name: "invalid code wins over bad reason", payload: []byte{0x00, 0x00, 0xFF}, code: 0, err: frames.ErrInvalidCloseCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, err := frames.ParseClose(tt.payload)
			if err != tt.err {
				t.Fatalf("ParseClose(% x) error = %v, want %v", tt.payload, err, tt.err)
			}
			if code != tt.code || reason != tt.reason {
				t.Errorf("ParseClose(% x) = %v, %q; want %v, %q", tt.payload, code, reason, tt.code, tt.reason)
			}
		})
	}
}

func TestParseCloseCodes(t *testing.T) {
	// Errors from ParseClose are the peer's doing and carry the close code
	// to fail the connection with: 1007 for a reason that is not UTF-8
	// (RFC 6455 §8.1), 1002 for the rest.
	tests := []struct {
		payload []byte
		code    frames.CloseCode
	}{
		{payload: []byte{0x03}, code: frames.CloseProtocolError},
		{payload: []byte{0x03, 0xED}, code: frames.CloseProtocolError},
		{payload: append([]byte{0x03, 0xE8}, reason124...), code: frames.CloseProtocolError},
		{payload: []byte{0x03, 0xE8, 0xFF}, code: frames.CloseInvalidPayload},
	}
	for _, tt := range tests {
		_, _, err := frames.ParseClose(tt.payload)
		if code, ok := frames.CodeOf(err); !ok || code != tt.code {
			t.Errorf("CodeOf(ParseClose(% x)) = %v, %v; want %v, true", tt.payload, code, ok, tt.code)
		}
	}
}
