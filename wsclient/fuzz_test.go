package wsclient_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/memconn"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// The placeholders of a FuzzDialResponse template. The key is random per
// dial, so the fuzzer writes {{accept}} where the right
// Sec-WebSocket-Accept goes; {{key}} is the key itself (a classic server
// bug), and the first {{pad}} grows into MaxResponseHeaderBytes bytes, so
// that the bound on the head can be reached.
const (
	fdAccept = "{{accept}}"
	fdKey    = "{{key}}"
	fdPad    = "{{pad}}"
)

const (
	// fdURL is what every FuzzDialResponse run dials; NetDial answers
	// with an in-memory connection, whatever the address.
	fdURL = "ws://fuzz.invalid/chat?room=1"
	// fdDeadline bounds a run whose server shuts its side after the
	// answer: Dial has every byte and EOF, so it never has to wait, and
	// its HandshakeTimeout, this long, must not be what ends it.
	fdDeadline = 5 * time.Second
	// fdHoldTimeout is the HandshakeTimeout of a run whose server keeps
	// its side open after the answer: an answer cut short must end in
	// this long, plus fdSlack.
	fdHoldTimeout = 50 * time.Millisecond
	fdSlack       = 2 * time.Second
	// fdReadAhead is how far past what the parser consumed the buffered
	// reader may have read, and counted against MaxResponseHeaderBytes:
	// one buffer, with room to spare.
	fdReadAhead = 8 << 10
)

// fdMode is what a FuzzDialResponse run offers and how the answer
// arrives, packed in one byte so that the fuzzer explores it too.
type fdMode struct {
	protocols bool // bit 0: Subprotocols "chat", "superchat"
	deflate   bool // bit 1: Config.Compression
	takeover  bool // bit 2: with context takeover
	custom    bool // bit 3: Extensions offers "x-custom; a=1"
	window    bool // bit 4: Extensions offers "permessage-deflate; client_max_window_bits", replacing Compression's offer
	trickle   bool // bit 5: Dial gets at most 7 bytes per read
	hold      bool // bit 6: the server keeps its side open after the answer
}

func decodeFDMode(m byte) fdMode {
	return fdMode{
		protocols: m&1 != 0,
		deflate:   m&2 != 0,
		takeover:  m&4 != 0,
		custom:    m&8 != 0,
		window:    m&16 != 0,
		trickle:   m&32 != 0,
		hold:      m&64 != 0,
	}
}

// offeredProtocols and offeredExtensions are what mode offers, written out
// from the Options documentation: Extensions first, then Compression's
// permessage-deflate unless they offer it already.
func (m fdMode) offeredProtocols() []string {
	if m.protocols {
		return []string{"chat", "superchat"}
	}
	return nil
}

func (m fdMode) offeredExtensions() []wsconn.Extension {
	var exts []wsconn.Extension
	if m.custom {
		exts = append(exts, wsconn.Extension{Name: "x-custom", Params: []wsconn.ExtensionParam{{Name: "a", Value: "1"}}})
	}
	if m.window {
		exts = append(exts, wsconn.Extension{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{{Name: "client_max_window_bits"}}})
	} else if m.deflate {
		e := wsconn.Extension{Name: "permessage-deflate"}
		if !m.takeover {
			e.Params = []wsconn.ExtensionParam{{Name: "client_no_context_takeover"}, {Name: "server_no_context_takeover"}}
		}
		exts = append(exts, e)
	}
	return exts
}

func (m fdMode) options(conn net.Conn) *wsclient.Options {
	o := &wsclient.Options{
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return conn, nil
		},
		Subprotocols:     m.offeredProtocols(),
		HandshakeTimeout: fdDeadline,
		Config:           &wsconn.Config{Logger: quiet, Compression: wsconn.Compression{Enabled: m.deflate, ContextTakeover: m.takeover}},
	}
	if m.hold {
		o.HandshakeTimeout = fdHoldTimeout
	}
	if m.custom {
		o.Extensions = append(o.Extensions, wsconn.Extension{Name: "x-custom", Params: []wsconn.ExtensionParam{{Name: "a", Value: "1"}}})
	}
	if m.window {
		o.Extensions = append(o.Extensions, wsconn.Extension{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{{Name: "client_max_window_bits"}}})
	}
	return o
}

// fdSwitch is a valid answer for the template, extra headers before the
// blank line.
func fdSwitch(extra string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + fdAccept + "\r\n" + extra + "\r\n"
}

// FuzzDialResponse dials with wsclient.Dial over an in-memory connection
// whose other end reads the handshake request and answers with the
// fuzzed template, {{accept}} replaced by the Sec-WebSocket-Accept for
// the key sent (see fdAccept), then shuts its side unless mode says to
// hold it (see fdMode). Whatever the bytes:
//
//   - nothing panics, and Dial returns within its HandshakeTimeout (plus
//     slack); when every byte and EOF are there, without waiting for it;
//   - Dial returns a connection only for a 101 that RFC 6455 §4.1 and RFC
//     7692 §7.1, written out again here, let a client accept: Upgrade and
//     Connection well-formed and naming the upgrade, the right
//     Sec-WebSocket-Accept, one offered subprotocol or none, offered
//     extensions once each with permessage-deflate parameters the client
//     can honour; then with what was negotiated, a connection wsconn
//     serves, and the bytes after the head handed on in order;
//   - otherwise the error is what wsclient's documentation says: a
//     HandshakeError (ErrHandshake) with the status, headers and body of a
//     refusal, or the reason of a 101 refused, matching
//     ErrCompressionResponse exactly when permessage-deflate's answer is
//     at fault; ErrResponseHeaderTooLarge for a head over
//     MaxResponseHeaderBytes; a read error, wrapped with the URL, for
//     bytes that hold no HTTP answer; a timeout only when the server held
//     its side open;
//   - no goroutine is left.
func FuzzDialResponse(f *testing.F) {
	const (
		protocols = 1
		deflate   = 2
		takeover  = 4
		custom    = 8
		window    = 16
		trickle   = 32
		hold      = 64
	)
	frames := "\x81\x05hello\x82\x00\x88\x02\x03\xe8"
	for _, seed := range []struct {
		answer string
		mode   byte
	}{
		// Valid switches.
		{fdSwitch(""), 0},
		{fdSwitch(""), hold | trickle},
		{fdSwitch("Sec-WebSocket-Protocol: chat\r\n"), protocols},
		{fdSwitch("Sec-WebSocket-Protocol: superchat\r\n"), protocols | hold},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"), deflate},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate\r\n"), deflate | takeover | trickle},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"), deflate | takeover},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9\r\n"), window},
		{fdSwitch("Sec-WebSocket-Extensions: x-custom; b=2\r\nSec-WebSocket-Extensions: permessage-deflate;server_no_context_takeover\r\n"), custom | deflate},
		{fdSwitch("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: x-custom, permessage-deflate; client_max_window_bits=15\r\n"), protocols | custom | window | hold},
		{"HTTP/1.1 101 OK\r\nupgrade: WebSocket, h2c/2\r\nconnection: keep-alive, upgrade\r\nsec-websocket-accept:   " + fdAccept + "  \r\nSet-Cookie: a=b\r\n\r\n", 0},
		{fdSwitch("") + frames, trickle},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate\r\n") + "\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00", deflate | takeover | hold},
		{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + fdSwitch(""), trickle},
		// Refusals.
		{"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nforbidden\n", 0},
		{"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 3\r\n\r\nno\n", hold},
		{"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", trickle},
		{"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\nupgrade", 0},
		{"HTTP/1.1 302 Found\r\nLocation: ws://elsewhere.invalid/\r\nContent-Length: 0\r\n\r\n", hold},
		{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", 0},
		{"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n", 0},
		// Invalid switches.
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + fdKey + "\r\n\r\n", 0},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 0},
		{fdSwitch("Sec-WebSocket-Accept: " + fdAccept + "\r\n"), 0},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket;v=13\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + fdAccept + "\r\n\r\n", 0},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: close\r\nSec-WebSocket-Accept: " + fdAccept + "\r\n\r\n", 0},
		{fdSwitch("Sec-WebSocket-Protocol: v2\r\n"), protocols},
		{fdSwitch("Sec-WebSocket-Protocol: chat, superchat\r\n"), protocols},
		{fdSwitch("Sec-WebSocket-Protocol: chat\r\n"), 0},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate\r\n"), 0},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate\r\n"), deflate},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n"), deflate},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=08\r\n"), deflate | takeover},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n"), deflate | takeover},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1; client_no_context_takeover\r\n"), deflate},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; x-unknown\r\n"), deflate | takeover},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n"), deflate | takeover},
		{fdSwitch("Sec-WebSocket-Extensions: x-custom, x-custom\r\n"), custom},
		{fdSwitch("Sec-WebSocket-Extensions: PERMESSAGE-DEFLATE\r\n"), deflate | takeover},
		{fdSwitch("Sec-WebSocket-Extensions: permessage-deflate; =\r\n"), deflate | takeover},
		// Broken or cut short, oversized.
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", 0},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", hold},
		{"HTTP/1.1 1O1 Switching Protocols\r\n\r\n", 0},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade websocket\r\n\r\n", 0},
		{"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0},
		{"SSH-2.0-OpenSSH_9.6\r\n", 0},
		{"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 0},
		{"", 0},
		{"", hold},
		{"HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + fdPad + "\r\n\r\n", 0},
		{"HTTP/1.1 403 Forbidden\r\nX-Pad: " + fdPad, trickle},
	} {
		f.Add([]byte(seed.answer), seed.mode)
	}
	f.Fuzz(func(t *testing.T, template []byte, modeBits byte) {
		runDialResponse(t, template, decodeFDMode(modeBits))
	})
}

// fdExpand fills the placeholders of template for key.
func fdExpand(template []byte, key string) []byte {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	b := bytes.ReplaceAll(template, []byte(fdAccept), []byte(base64.StdEncoding.EncodeToString(sum[:])))
	b = bytes.ReplaceAll(b, []byte(fdKey), []byte(key))
	return bytes.Replace(b, []byte(fdPad), bytes.Repeat([]byte{'a'}, wsclient.MaxResponseHeaderBytes), 1)
}

// fdServer is the server end of one run.
type fdServer struct {
	done   chan struct{}
	req    *http.Request // the handshake request, once done
	answer []byte        // what it sent
	err    error
}

func runDialResponse(t *testing.T, template []byte, mode fdMode) {
	baseGoroutines := runtime.NumGoroutine()
	maxRead := 0
	if mode.trickle {
		maxRead = 7
	}
	// memconn caps the reads of its second end: that one is Dial's.
	srvConn, dialConn := memconn.Pipe(maxRead)
	defer srvConn.Close()
	defer dialConn.Close()

	srv := &fdServer{done: make(chan struct{})}
	go func() {
		defer close(srv.done)
		req, err := http.ReadRequest(bufio.NewReader(srvConn))
		if err != nil {
			srv.err = err
			return
		}
		srv.req = req
		srv.answer = fdExpand(template, req.Header.Get("Sec-WebSocket-Key"))
		if _, err := srvConn.Write(srv.answer); err != nil {
			srv.err = err
			return
		}
		if !mode.hold {
			_ = srvConn.CloseWrite()
		}
	}()

	type result struct {
		u    wsconn.Upgraded
		resp *http.Response
		err  error
	}
	opts := mode.options(dialConn)
	dialed := make(chan result, 1)
	start := time.Now()
	go func() {
		u, resp, err := wsclient.Dial(context.Background(), fdURL, opts)
		dialed <- result{u, resp, err}
	}()
	limit := opts.HandshakeTimeout + fdSlack
	var r result
	select {
	case r = <-dialed:
	case <-time.After(limit):
		var stacks strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2)
		t.Fatalf("mode %+v: Dial did not return within %v\n%s", mode, limit, stacks.String())
	}
	elapsed := time.Since(start)
	<-srv.done
	if srv.err != nil {
		t.Fatalf("mode %+v: the server end: %v", mode, srv.err)
	}
	checkDialRequest(t, srv.req, mode)
	if r.err == nil {
		defer r.u.Conn.Close()
	}
	if mode.hold && errors.Is(r.err, context.DeadlineExceeded) {
		if elapsed < opts.HandshakeTimeout {
			t.Fatalf("mode %+v: Dial timed out after %v, before its HandshakeTimeout of %v: %v", mode, elapsed, opts.HandshakeTimeout, r.err)
		}
	} else {
		checkDialOutcome(t, mode, srv, r.u, r.resp, r.err)
	}

	dialConn.Close()
	srvConn.Close()
	if r.err == nil {
		r.u.Conn.Close()
	}
	checkNoGoroutinesLeft(t, baseGoroutines)
}

// checkDialRequest checks that Dial offered what mode says.
func checkDialRequest(t *testing.T, req *http.Request, mode fdMode) {
	t.Helper()
	offered, _ := fdList(req.Header.Values("Sec-WebSocket-Protocol"), fdIsToken)
	if want := mode.offeredProtocols(); !slices.Equal(offered, want) {
		t.Fatalf("mode %+v: Dial offered subprotocols %q, want %q", mode, offered, want)
	}
	exts, err := handshake.ParseExtensions(req.Header.Values("Sec-WebSocket-Extensions")...)
	if err != nil {
		t.Fatalf("mode %+v: Dial's offer: %v", mode, err)
	}
	if got, want := fdExtString(exts), fdExtString(mode.offeredExtensions()); got != want {
		t.Fatalf("mode %+v: Dial offered extensions %q, want %q", mode, got, want)
	}
}

func fdExtString(exts []wsconn.Extension) string {
	s := make([]string, len(exts))
	for i, e := range exts {
		s[i] = e.String()
	}
	return strings.Join(s, ", ")
}

// fdAnswer is what the server's bytes hold, read by net/http as a client
// reads an answer, interim ones (1xx but 101) skipped.
type fdAnswer struct {
	resp     *http.Response // the final answer, nil when none could be read
	err      error          // why not
	consumed int            // bytes the heads took, or the parser consumed before failing
	body     []byte         // a refusal's body, up to MaxErrorBody
	bodyErr  error
	rest     []byte // what follows a 101's head
}

func readFDAnswer(b []byte) fdAnswer {
	r := bytes.NewReader(b)
	br := bufio.NewReader(r)
	var a fdAnswer
	req := &http.Request{Method: http.MethodGet}
	for {
		a.resp, a.err = http.ReadResponse(br, req)
		a.consumed = len(b) - br.Buffered() - r.Len()
		if a.err != nil || a.resp.StatusCode >= 200 || a.resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	switch {
	case a.err != nil:
		a.resp = nil
	case a.resp.StatusCode == http.StatusSwitchingProtocols:
		a.rest = b[a.consumed:]
	default:
		a.body, a.bodyErr = io.ReadAll(io.LimitReader(a.resp.Body, wsclient.MaxErrorBody))
	}
	return a
}

// checkDialOutcome holds what Dial returned to what the answer allows.
func checkDialOutcome(t *testing.T, mode fdMode, srv *fdServer, u wsconn.Upgraded, resp *http.Response, err error) {
	t.Helper()
	a := readFDAnswer(srv.answer)
	he, isHandshake := errors.AsType[*wsclient.HandshakeError](err)
	if isHandshake != errors.Is(err, wsclient.ErrHandshake) {
		t.Fatalf("mode %+v: errors.Is(%v, ErrHandshake) = %v for a %T", mode, err, !isHandshake, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("mode %+v: Dial timed out though the whole answer (%d bytes) and EOF were there: %v\n%q", mode, len(srv.answer), err, fdShort(srv.answer))
	}

	// The bound on the head: MaxResponseHeaderBytes, counting what the
	// reader read ahead.
	tooLarge := errors.Is(err, wsclient.ErrResponseHeaderTooLarge)
	mayBeTooLarge := a.consumed+fdReadAhead > wsclient.MaxResponseHeaderBytes
	mustBeTooLarge := a.err == nil && a.consumed > wsclient.MaxResponseHeaderBytes
	switch {
	case tooLarge && !mayBeTooLarge:
		t.Fatalf("mode %+v: ErrResponseHeaderTooLarge for an answer whose head is %d bytes: %v", mode, a.consumed, err)
	case tooLarge && (isHandshake || resp != nil):
		t.Fatalf("mode %+v: ErrResponseHeaderTooLarge with a HandshakeError or a response: %v", mode, err)
	case tooLarge:
		return
	case mustBeTooLarge:
		t.Fatalf("mode %+v: a head of %d bytes, over MaxResponseHeaderBytes, got %v", mode, a.consumed, err)
	}

	if a.err != nil {
		// No HTTP answer: a read error, not a HandshakeError.
		switch {
		case err == nil:
			t.Fatalf("mode %+v: Dial succeeded on bytes that hold no HTTP answer (%v)\n%q", mode, a.err, fdShort(srv.answer))
		case isHandshake, resp != nil:
			t.Fatalf("mode %+v: bytes that hold no HTTP answer (%v) got %v and a response %v", mode, a.err, err, resp != nil)
		case !strings.HasPrefix(err.Error(), "wsclient: dial ws://fuzz.invalid/chat?room=1: read handshake response: "):
			t.Fatalf("mode %+v: bytes that hold no HTTP answer (%v): the error %q does not say so with the URL", mode, a.err, err)
		}
		return
	}

	if a.resp.StatusCode != http.StatusSwitchingProtocols {
		checkDialRefusal(t, mode, a, he, resp, err)
		return
	}
	proto, exts, reason, compression := judgeSwitch(a.resp.Header, srv.req.Header.Get("Sec-WebSocket-Key"), mode)
	if reason != "" {
		switch {
		case err == nil:
			t.Fatalf("mode %+v: Dial accepted a 101 that breaks the RFC: %s\n%q", mode, reason, fdShort(srv.answer))
		case !isHandshake || he.StatusCode != http.StatusSwitchingProtocols || he.Reason == "" || he.Proxy:
			t.Fatalf("mode %+v: a 101 refused (%s) got %#v: %v", mode, reason, he, err)
		case errors.Is(err, wsclient.ErrCompressionResponse) != compression:
			t.Fatalf("mode %+v: a 101 refused (%s, permessage-deflate at fault: %v) got %v, matching ErrCompressionResponse: %v", mode, reason, compression, err, !compression)
		case resp == nil || resp.StatusCode != http.StatusSwitchingProtocols:
			t.Fatalf("mode %+v: a 101 refused without its response", mode)
		}
		return
	}
	if err != nil {
		t.Fatalf("mode %+v: Dial refused a valid 101: %v\n%q", mode, err, fdShort(srv.answer))
	}
	checkDialSwitch(t, mode, srv, a, u, resp, proto, exts)
}

// checkDialRefusal checks the error of an answer other than 101.
func checkDialRefusal(t *testing.T, mode fdMode, a fdAnswer, he *wsclient.HandshakeError, resp *http.Response, err error) {
	t.Helper()
	status := a.resp.StatusCode
	switch {
	case he == nil:
		t.Fatalf("mode %+v: a %d answer got %v, not a HandshakeError", mode, status, err)
	case he.StatusCode != status || he.Status != a.resp.Status || he.Reason != "" || he.Proxy || he.Err != nil:
		t.Fatalf("mode %+v: a %q answer got %#v", mode, a.resp.Status, he)
	case resp == nil || resp.StatusCode != status:
		t.Fatalf("mode %+v: a %d answer without its response", mode, status)
	case !fdHeaderEqual(he.Header, a.resp.Header):
		t.Fatalf("mode %+v: the refusal's headers %q, want %q", mode, he.Header, a.resp.Header)
	case len(he.Body) > wsclient.MaxErrorBody:
		t.Fatalf("mode %+v: HandshakeError.Body holds %d bytes", mode, len(he.Body))
	case a.bodyErr == nil && !bytes.Equal(he.Body, a.body):
		t.Fatalf("mode %+v: HandshakeError.Body %q, want %q", mode, fdShort(he.Body), fdShort(a.body))
	}
	body, rerr := io.ReadAll(resp.Body)
	if rerr != nil || !bytes.Equal(body, he.Body) {
		t.Fatalf("mode %+v: the response's Body reads %q, %v; HandshakeError.Body is %q", mode, fdShort(body), rerr, fdShort(he.Body))
	}
}

// checkDialSwitch checks the connection Dial returned for a valid 101.
func checkDialSwitch(t *testing.T, mode fdMode, srv *fdServer, a fdAnswer, u wsconn.Upgraded, resp *http.Response, proto string, exts []wsconn.Extension) {
	t.Helper()
	switch {
	case resp == nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Body != http.NoBody:
		t.Fatalf("mode %+v: a connection with the response %+v", mode, resp)
	case u.Conn == nil || !u.Client || u.Request == nil:
		t.Fatalf("mode %+v: Upgraded %+v", mode, u)
	case u.Request.Header.Get("Sec-WebSocket-Key") != srv.req.Header.Get("Sec-WebSocket-Key"):
		t.Fatalf("mode %+v: Upgraded.Request is not the request sent", mode)
	case u.Subprotocol != proto:
		t.Fatalf("mode %+v: subprotocol %q, want %q", mode, u.Subprotocol, proto)
	case fdExtString(u.Extensions) != fdExtString(exts) || len(u.Extensions) != len(exts):
		t.Fatalf("mode %+v: extensions %q, want %q", mode, fdExtString(u.Extensions), fdExtString(exts))
	}
	if !fdServable(u.Extensions) {
		t.Fatalf("mode %+v: wsconn does not serve the extensions Dial accepted: %q", mode, fdExtString(u.Extensions))
	}
	// What follows the head: Upgraded.Buffered, then the connection.
	if len(u.Buffered) > len(a.rest) || !bytes.Equal(u.Buffered, a.rest[:len(u.Buffered)]) {
		t.Fatalf("mode %+v: Upgraded.Buffered %q, but the head is followed by %q", mode, fdShort(u.Buffered), fdShort(a.rest))
	}
	_ = u.Conn.SetReadDeadline(time.Now().Add(fdDeadline))
	more := make([]byte, len(a.rest)-len(u.Buffered))
	if _, err := io.ReadFull(u.Conn, more); err != nil || !bytes.Equal(more, a.rest[len(u.Buffered):]) {
		t.Fatalf("mode %+v: after Upgraded.Buffered the connection reads %q, %v; want %q", mode, fdShort(more), err, fdShort(a.rest[len(u.Buffered):]))
	}
	if !mode.hold {
		if n, err := u.Conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("mode %+v: the connection reads %d more bytes, %v", mode, n, err)
		}
	}
}

// judgeSwitch applies RFC 6455 §4.1 (the client's checks of a 101) and
// RFC 7692 §7.1 to a 101's headers, in the order wsclient documents, and
// returns the negotiated subprotocol and extensions, or why the answer
// must be refused and whether permessage-deflate's answer is at fault.
// Lists follow RFC 9110 §5.6.1: elements separated by commas, with
// optional white space, empty ones skipped, and all of them well-formed.
func judgeSwitch(h http.Header, key string, mode fdMode) (proto string, exts []wsconn.Extension, reason string, compression bool) {
	upgrades, ok := fdList(h.Values("Upgrade"), fdIsProtocol)
	if !ok || !fdContainsFold(upgrades, "websocket") {
		return "", nil, "Upgrade does not name websocket", false
	}
	conns, ok := fdList(h.Values("Connection"), fdIsToken)
	if !ok || !fdContainsFold(conns, "upgrade") {
		return "", nil, "Connection does not name upgrade", false
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	accepts := h.Values("Sec-WebSocket-Accept")
	if len(accepts) != 1 || strings.Trim(accepts[0], " \t") != base64.StdEncoding.EncodeToString(sum[:]) {
		return "", nil, "wrong Sec-WebSocket-Accept", false
	}
	protos, ok := fdList(h.Values("Sec-WebSocket-Protocol"), fdIsToken)
	switch {
	case !ok || len(protos) > 1:
		return "", nil, "not one subprotocol", false
	case len(protos) == 1 && !slices.Contains(mode.offeredProtocols(), protos[0]):
		return "", nil, "a subprotocol not offered", false
	case len(protos) == 1:
		proto = protos[0]
	}
	offered := mode.offeredExtensions()
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		more, err := handshake.ParseExtensions(v)
		if err != nil {
			return "", nil, "malformed Sec-WebSocket-Extensions", false
		}
		exts = append(exts, more...)
	}
	for i, e := range exts {
		// Names are compared exactly (RFC 6455 §9.1 names an extension by
		// its registered token).
		j := slices.IndexFunc(offered, func(o wsconn.Extension) bool { return o.Name == e.Name })
		if j < 0 {
			return "", nil, "an extension not offered", false
		}
		deflate := e.Name == "permessage-deflate"
		if slices.ContainsFunc(exts[:i], func(p wsconn.Extension) bool { return p.Name == e.Name }) {
			return "", nil, "an extension accepted twice", deflate
		}
		if deflate {
			if why := judgeDeflate(e, offered[j]); why != "" {
				return "", nil, why, true
			}
		}
	}
	return proto, exts, "", false
}

// judgeDeflate applies RFC 7692 §7.1 to a permessage-deflate answer to
// offer: each parameter once; the no_context_takeover ones without a
// value; window bits from 8 to 15 in decimal without leading zeros;
// client_max_window_bits only if offered; server_no_context_takeover if
// the offer asked for it (a response without it answers another offer);
// nothing else.
func judgeDeflate(e, offer wsconn.Extension) string {
	seen := map[string]bool{}
	for _, p := range e.Params {
		if seen[p.Name] {
			return "a parameter twice"
		}
		seen[p.Name] = true
		switch p.Name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if p.Value != "" {
				return p.Name + " with a value"
			}
		case "server_max_window_bits", "client_max_window_bits":
			v := p.Value
			if len(v) == 0 || len(v) > 2 || v[0] == '0' || strings.Trim(v, "0123456789") != "" || !slices.Contains([]string{"8", "9", "10", "11", "12", "13", "14", "15"}, v) {
				return p.Name + " out of range"
			}
			if _, ok := offer.Param(p.Name); p.Name == "client_max_window_bits" && !ok {
				return "client_max_window_bits not offered"
			}
		default:
			return "unknown parameter " + p.Name
		}
	}
	if _, asked := offer.Param("server_no_context_takeover"); asked && !seen["server_no_context_takeover"] {
		return "server_no_context_takeover not granted"
	}
	return ""
}

// fdList splits header values into their elements, trimmed of spaces and
// tabs, empty ones skipped, and reports whether each passes valid.
func fdList(values []string, valid func(string) bool) ([]string, bool) {
	var elems []string
	ok := true
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			e = strings.Trim(e, " \t")
			if e == "" {
				continue
			}
			ok = ok && valid(e)
			elems = append(elems, e)
		}
	}
	return elems, ok
}

// fdIsToken reports whether s is an RFC 9110 §5.6.2 token.
func fdIsToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7F || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// fdIsProtocol reports whether s is an element of Upgrade: a token,
// optionally "/" and a version token (RFC 9110 §7.8).
func fdIsProtocol(s string) bool {
	name, version, found := strings.Cut(s, "/")
	return fdIsToken(name) && (!found || fdIsToken(version))
}

func fdContainsFold(elems []string, token string) bool {
	return slices.ContainsFunc(elems, func(e string) bool { return strings.EqualFold(e, token) })
}

func fdHeaderEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// fdServable reports whether wsconn serves a client connection whose
// negotiated extensions are exts (one it cannot use fails before its
// handler runs).
func fdServable(exts []wsconn.Extension) bool {
	local, peer := memconn.Pipe(0)
	_ = peer.Close()
	served := false
	cfg := &wsconn.Config{Logger: quiet, PingInterval: -1, Compression: wsconn.Compression{Enabled: true}}
	_ = wsconn.Serve(context.Background(), wsconn.Upgraded{Conn: local, Extensions: exts, Client: true}, struct{}{},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			served = true
			return nil
		}, cfg)
	return served
}

// fdShort cuts b for a failure message.
func fdShort(b []byte) string {
	if len(b) > 600 {
		return fmt.Sprintf("%s... (%d bytes)", b[:600], len(b))
	}
	return string(b)
}

// checkNoGoroutinesLeft waits briefly for the goroutine count to fall back
// to base: timer callbacks may still be on their way out.
func checkNoGoroutinesLeft(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines left over after Dial returned\n%s", runtime.NumGoroutine()-base, stacks.String())
		}
		time.Sleep(time.Millisecond)
	}
}
