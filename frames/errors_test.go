package frames_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

func TestViolations(t *testing.T) {
	tests := []struct {
		err    *frames.Violation
		code   frames.CloseCode
		reason string
	}{
		{err: frames.ErrLengthMSB, code: 1002, reason: "64-bit payload length with the most significant bit set"},
		{err: frames.ErrReservedOpcode, code: 1002, reason: "reserved opcode"},
		{err: frames.ErrReservedBits, code: 1002, reason: "reserved bits set without a negotiated extension"},
		{err: frames.ErrFragmentedControl, code: 1002, reason: "fragmented control frame"},
		{err: frames.ErrControlTooLong, code: 1002, reason: "control frame payload over 125 bytes"},
		{err: frames.ErrUnmasked, code: 1002, reason: "client frame not masked"},
		{err: frames.ErrMasked, code: 1002, reason: "server frame masked"},
		{err: frames.ErrClosePayload, code: 1002, reason: "close payload of one byte"},
		{err: frames.ErrInvalidCloseCode, code: 1002, reason: "invalid close code"},
		{err: frames.ErrCloseReasonTooLong, code: 1002, reason: "close reason over 123 bytes"},
		{err: frames.ErrInvalidCloseReason, code: 1007, reason: "close reason is not valid UTF-8"},
	}
	for _, tt := range tests {
		if tt.err.Code != tt.code || tt.err.Reason != tt.reason || tt.err.Error() != tt.reason {
			t.Errorf("violation %q: code %v, want %v; reason %q, want %q", tt.err.Error(), tt.err.Code, tt.code, tt.err.Reason, tt.reason)
		}
		// The reason must be sendable as it is in a close frame.
		if _, err := frames.AppendClose(nil, tt.err.Code, tt.err.Reason); err != nil {
			t.Errorf("violation %q cannot be sent: %v", tt.reason, err)
		}
		wrapped := fmt.Errorf("wsconn: reading: %w", tt.err)
		if !errors.Is(wrapped, tt.err) {
			t.Errorf("errors.Is(wrapped %q) = false", tt.reason)
		}
		if code, ok := frames.CodeOf(wrapped); !ok || code != tt.code {
			t.Errorf("CodeOf(wrapped %q) = %v, %v; want %v, true", tt.reason, code, ok, tt.code)
		}
		for _, other := range tests {
			if other.err != tt.err && errors.Is(tt.err, other.err) {
				t.Errorf("errors.Is(%q, %q) = true; sentinels must differ", tt.reason, other.reason)
			}
		}
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code frames.CloseCode
		ok   bool
	}{
		{name: "nil", err: nil},
		{name: "plain error", err: errors.New("boom")},
		{name: "short header", err: frames.ErrShortHeader},
		{name: "nil violation", err: (*frames.Violation)(nil)},
		{name: "custom violation", err: &frames.Violation{Code: 1008, Reason: "no"}, code: 1008, ok: true},
		{name: "joined", err: errors.Join(errors.New("a"), frames.ErrInvalidCloseReason), code: 1007, ok: true},
	}
	for _, tt := range tests {
		code, ok := frames.CodeOf(tt.err)
		if code != tt.code || ok != tt.ok {
			t.Errorf("%s: CodeOf = %v, %v; want %v, %v", tt.name, code, ok, tt.code, tt.ok)
		}
	}
}
