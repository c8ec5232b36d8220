package wsconn

import (
	"log/slog"
	"time"
)

// Defaults used where a Config field is left at its zero value.
const (
	DefaultMaxMessageSize = 1 << 20
	DefaultFragmentSize   = 64 << 10
	DefaultPingInterval   = 30 * time.Second
	DefaultPongTimeout    = 20 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultCloseTimeout   = 5 * time.Second
)

// Config tunes one connection. The zero value means the documented defaults;
// where a field's doc says so, a negative value switches its feature off. A
// Config is read once when the connection starts and may be shared by many
// connections.
type Config struct {
	// MaxMessageSize is the largest message payload, in bytes, that
	// Inbound.Messages assembles when called with a limit of 0. A larger
	// message closes the connection with 1009 before the excess is read.
	// Default DefaultMaxMessageSize (1 MiB).
	MaxMessageSize int64

	// MaxFrameSize is the largest data frame payload, in bytes, accepted
	// from the peer; a larger frame closes the connection with 1009 before
	// its payload is read. Control frames carry at most 125 bytes and are
	// not held to it. Default 0: frames are bounded by the message limit
	// of the loop that reads them (Messages' maxSize; MaxMessageSize for
	// Frames; none for Readers). Browsers send each message as one frame,
	// so a value below the message limit refuses their large messages.
	MaxFrameSize int64

	// FragmentSize is the largest payload colibri puts in one outgoing
	// frame; longer messages are sent as continuation frames, which lets
	// PING and PONG frames through between fragments. Default
	// DefaultFragmentSize (64 KiB).
	FragmentSize int

	// PingInterval is how long the connection may go without hearing from
	// the peer before colibri sends a PING. Default 30 s; negative disables
	// keep-alive pings. colibri looks at the connection every quarter
	// interval rather than at every frame, so the PING may go out up to a
	// quarter interval early.
	PingInterval time.Duration

	// PongTimeout is how long colibri waits, from the moment its PING left,
	// for the peer to answer (any frame counts) before closing with 1001.
	// Default 20 s; negative: pings are sent but never time out.
	PongTimeout time.Duration

	// IdleTimeout closes the connection with 1001 when the peer has sent no
	// data frame for this long, or up to a quarter of it longer (colibri
	// looks every quarter timeout rather than at every frame). PING, PONG
	// and keep-alive traffic do not count. A peer whose data waits unread,
	// because a busy loop body let ReadAhead fill, is not idle. Default 0:
	// no idle timeout.
	IdleTimeout time.Duration

	// WriteTimeout bounds each write to the socket. A peer that stops
	// reading is disconnected once a write has waited 0.9 to 1 times this
	// long (the deadline moves once per tenth of it, not at every write).
	// A router's ws route bounds writing the 101 (or 200) with it too,
	// with 10 s when it is negative. Default 10 s; negative: no timeout.
	WriteTimeout time.Duration

	// CloseTimeout is how long the closing handshake waits for the peer's
	// CLOSE frame before closing the TCP connection, from the moment
	// colibri's CLOSE went out; also how long a client that got the
	// server's CLOSE waits for the server to close TCP, and how long the
	// lingering close after a violation reads. Default 5 s (also for
	// negative values).
	CloseTimeout time.Duration

	// SkipUTF8Check turns off UTF-8 validation of text messages (RFC 6455
	// §8.1 requires it); close reasons, at most 123 bytes, are always
	// checked. Only for peers that are trusted and measured to need it.
	// Default false.
	SkipUTF8Check bool

	// KeepRequest keeps the upgraded *http.Request, its headers included,
	// for Conn.Request while the connection lives. Default false: the
	// request is let go once the connection is set up (observers still see
	// it in ConnOpened), which saves 1–3 KiB per connection. The request's
	// context values are in the handler's context either way; read what
	// else the handler needs in the upgrade decision and hand it over as
	// the session's Value.
	KeepRequest bool

	// Compression configures permessage-deflate (RFC 7692). Default off.
	// The handshake negotiates it (see Compression); a message that
	// inflates past MaxMessageSize closes the connection with 1009 before
	// more than the limit is allocated.
	Compression Compression

	// Logger receives the connection's log lines; colibri adds the
	// connection's route pattern, id, remote address, subprotocol and
	// compression. Default: the application's logger (app.Config.Logger)
	// when the connection comes through a router's ws route served by an
	// app, else slog.Default().
	Logger *slog.Logger

	// Observer watches every connection served with this Config: its
	// messages, keep-alive round trips, protocol errors and close (see
	// Observer; the observe package feeds them to OpenTelemetry). A
	// router given this Config also reports its upgrade requests to it,
	// unless router.WithObserver names another. Default nil: nothing is
	// observed, for one nil check per event.
	Observer Observer

	// Clock drives keep-alive, the idle timeout and the start of the
	// background reader; WriteTimeout and CloseTimeout are socket
	// deadlines on the real clock. Default: the real clock. Tests
	// inject a fake one (see wstest) to make time-based behaviour instant.
	Clock Clock
}

// settings is what a connection consults while it lives: its Config with
// every default applied. What only the set-up needs (compression, the
// observer, KeepRequest) is read from the Config there.
type settings struct {
	maxMessage   int64
	maxFrame     int64
	fragment     int
	pingInterval time.Duration
	pongTimeout  time.Duration
	idleTimeout  time.Duration
	writeTimeout time.Duration
	closeTimeout time.Duration
	checkUTF8    bool
	logger       *slog.Logger
	clock        Clock
}

// resolve applies the defaults to c. Each connection keeps its own
// settings, copied once at its start.
func (c *Config) resolve() settings {
	s := settings{
		maxMessage:   c.MaxMessageSize,
		maxFrame:     c.MaxFrameSize,
		fragment:     c.FragmentSize,
		pingInterval: pick(c.PingInterval, DefaultPingInterval),
		pongTimeout:  pick(c.PongTimeout, DefaultPongTimeout),
		idleTimeout:  max(c.IdleTimeout, 0),
		writeTimeout: pick(c.WriteTimeout, DefaultWriteTimeout),
		closeTimeout: pick(c.CloseTimeout, DefaultCloseTimeout),
		checkUTF8:    !c.SkipUTF8Check,
		logger:       c.Logger,
		clock:        c.Clock,
	}
	if s.maxMessage <= 0 {
		s.maxMessage = DefaultMaxMessageSize
	}
	if s.maxFrame < 0 {
		s.maxFrame = 0
	}
	if s.fragment <= 0 {
		s.fragment = DefaultFragmentSize
	}
	if s.closeTimeout <= 0 {
		s.closeTimeout = DefaultCloseTimeout
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	return s
}

// pick returns d, or def when d is zero; negative values stay negative and
// mean "off".
func pick(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Clock is the time source of a connection's timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f after d, like time.AfterFunc; f may run on any
	// goroutine (a fake clock runs it in the one that advances time).
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the handle AfterFunc returns.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
	// Reset changes the timer to fire after d; it reports whether the
	// timer had been active.
	Reset(d time.Duration) bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
