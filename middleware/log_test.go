package middleware

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// logOf runs Log(logger) around h for r and returns the one line logged.
func logOf(t *testing.T, h http.Handler, r *http.Request) map[string]any {
	t.Helper()
	logger, buf := jsonLogger()
	serve(Log(logger)(h), r)
	return oneLogLine(t, buf)
}

func wantLog(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if v == nil {
			if got, present := line[k]; present {
				t.Errorf("log has %s = %v, want it absent", k, got)
			}
			continue
		}
		if line[k] != v {
			t.Errorf("log %s = %v (%T), want %v", k, line[k], line[k], v)
		}
	}
}

func TestLogPlainRequest(t *testing.T) {
	line := logOf(t, ok, httptest.NewRequest(http.MethodGet, "/hello?token=s3cret", nil))
	wantLog(t, line, map[string]any{
		"level": "INFO", "msg": "request", "method": "GET", "path": "/hello",
		"status": 200.0, "bytes": 2.0, "remote": "192.0.2.1:1234",
		"request_id": nil, "upgrade": nil, "panic": nil,
	})
	if d, ok := line["duration"].(float64); !ok || d < 0 {
		t.Errorf("duration = %v, want a non-negative number", line["duration"])
	}
}

func TestLogLeavesQueryOut(t *testing.T) {
	logger, buf := jsonLogger()
	serve(Log(logger)(ok), httptest.NewRequest(http.MethodGet, "/x?access_token=s3cret", nil))
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("log line holds the query string: %s", buf)
	}
}

func TestLogNothingWrittenIs200(t *testing.T) {
	line := logOf(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		httptest.NewRequest(http.MethodGet, "/", nil))
	wantLog(t, line, map[string]any{"status": 200.0, "bytes": 0.0, "level": "INFO"})
}

func TestLogLevels(t *testing.T) {
	for _, tc := range []struct {
		status int
		level  string
	}{
		{http.StatusOK, "INFO"},
		{http.StatusNoContent, "INFO"},
		{http.StatusFound, "INFO"},
		{http.StatusBadRequest, "WARN"},
		{http.StatusTooManyRequests, "WARN"},
		{http.StatusInternalServerError, "ERROR"},
		{http.StatusServiceUnavailable, "ERROR"},
	} {
		line := logOf(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
		}), httptest.NewRequest(http.MethodGet, "/", nil))
		wantLog(t, line, map[string]any{"status": float64(tc.status), "level": tc.level})
	}
}

func TestLogRequestIDEitherSide(t *testing.T) {
	t.Run("RequestID outside", func(t *testing.T) {
		logger, buf := jsonLogger()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(RequestIDHeader, "outer-1")
		serve(RequestID(Log(logger)(ok)), r)
		wantLog(t, oneLogLine(t, buf), map[string]any{"request_id": "outer-1"})
	})
	t.Run("RequestID inside", func(t *testing.T) {
		logger, buf := jsonLogger()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(RequestIDHeader, "inner-1")
		serve(Log(logger)(RequestID(ok)), r)
		wantLog(t, oneLogLine(t, buf), map[string]any{"request_id": "inner-1"})
	})
}

func TestLogUpgradeAccepted(t *testing.T) {
	line := logOf(t, acceptUpgrade, upgradeRequest("/ws/chat"))
	wantLog(t, line, map[string]any{
		"status": 101.0, "upgrade": "accepted", "level": "INFO", "bytes": 0.0, "path": "/ws/chat",
	})
}

func TestLogUpgradeAcceptedHTTP2(t *testing.T) {
	r := httptest.NewRequest(http.MethodConnect, "/ws", nil)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.Header.Set(":protocol", "websocket")
	line := logOf(t, acceptUpgrade, r)
	wantLog(t, line, map[string]any{"status": 200.0, "upgrade": "accepted"})
}

func TestLogUpgradeWrittenAs101(t *testing.T) {
	line := logOf(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
	}), upgradeRequest("/ws"))
	wantLog(t, line, map[string]any{"status": 101.0, "upgrade": "accepted"})
}

func TestLogUpgradeRefused(t *testing.T) {
	t.Run("with a status", func(t *testing.T) {
		line := logOf(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "username required", http.StatusBadRequest)
		}), upgradeRequest("/ws"))
		wantLog(t, line, map[string]any{"status": 400.0, "upgrade": "refused", "level": "WARN"})
	})
	t.Run("by middleware", func(t *testing.T) {
		logger, buf := jsonLogger()
		serve(Log(logger)(Bearer(rejectAll)(acceptUpgrade)), upgradeRequest("/ws"))
		wantLog(t, oneLogLine(t, buf), map[string]any{"status": 401.0, "upgrade": "refused"})
	})
	t.Run("nothing written and no decision", func(t *testing.T) {
		line := logOf(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), upgradeRequest("/ws"))
		wantLog(t, line, map[string]any{"status": 200.0, "upgrade": "refused"})
	})
}

// hijackWriter is a ResponseWriter that can be hijacked onto a pipe.
type hijackWriter struct {
	*httptest.ResponseRecorder
	conn net.Conn
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rw := bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn))
	return w.conn, rw, nil
}

func TestLogUpgradeHijackedByHandler(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	logger, buf := jsonLogger()
	h := Log(logger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack through Log: %v", err)
			return
		}
		conn.Close()
	}))
	h.ServeHTTP(&hijackWriter{httptest.NewRecorder(), server}, upgradeRequest("/ws"))
	wantLog(t, oneLogLine(t, buf), map[string]any{"status": 0.0, "upgrade": "hijacked", "level": "INFO"})
}

func TestLogPanicPassesThrough(t *testing.T) {
	t.Run("Log inside Recover", func(t *testing.T) {
		logger, buf := jsonLogger()
		recLogger, _ := jsonLogger()
		w := serve(Recover(recLogger)(Log(logger)(panicking("boom"))), httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code != http.StatusInternalServerError {
			t.Errorf("status %d, want Recover's 500", w.Code)
		}
		wantLog(t, oneLogLine(t, buf), map[string]any{"panic": true, "status": 0.0, "level": "ERROR"})
	})
	t.Run("Log outside Recover", func(t *testing.T) {
		logger, buf := jsonLogger()
		recLogger, _ := jsonLogger()
		serve(Log(logger)(Recover(recLogger)(panicking("boom"))), httptest.NewRequest(http.MethodGet, "/", nil))
		wantLog(t, oneLogLine(t, buf), map[string]any{"panic": nil, "status": 500.0, "level": "ERROR"})
	})
}

// TestLogNilLoggerUsesDefault changes the default logger, so it does not
// run in parallel.
func TestLogNilLoggerUsesDefault(t *testing.T) {
	logger, buf := jsonLogger()
	old := slog.Default()
	slog.SetDefault(logger)
	defer slog.SetDefault(old)
	serve(Log(nil)(ok), httptest.NewRequest(http.MethodGet, "/", nil))
	wantLog(t, oneLogLine(t, buf), map[string]any{"msg": "request", "status": 200.0})
}

func TestIsUpgradeRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers map[string][]string
		want    bool
	}{
		{"plain", map[string][]string{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, true},
		{"case", map[string][]string{"Connection": {"UPGRADE"}, "Upgrade": {"WebSocket"}}, true},
		{"lists", map[string][]string{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"h2c ,\twebsocket"}}, true},
		{"several fields", map[string][]string{"Connection": {"keep-alive", "upgrade"}, "Upgrade": {"websocket"}}, true},
		{"no Connection", map[string][]string{"Upgrade": {"websocket"}}, false},
		{"no Upgrade", map[string][]string{"Connection": {"Upgrade"}}, false},
		{"other protocol", map[string][]string{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}}, false},
		{"token inside a word", map[string][]string{"Connection": {"upgrades"}, "Upgrade": {"websockets"}}, false},
		{"Connection close", map[string][]string{"Connection": {"close"}, "Upgrade": {"websocket"}}, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for k, vs := range tc.headers {
			r.Header[k] = vs
		}
		if got := isUpgradeRequest(r); got != tc.want {
			t.Errorf("%s: isUpgradeRequest = %v, want %v", tc.name, got, tc.want)
		}
	}

	h2 := httptest.NewRequest(http.MethodConnect, "/ws", nil)
	h2.ProtoMajor = 2
	if isUpgradeRequest(h2) {
		t.Error("HTTP/2 CONNECT without :protocol counted as an upgrade")
	}
	h2.Header.Set(":protocol", "websocket")
	if !isUpgradeRequest(h2) {
		t.Error("HTTP/2 extended CONNECT for websocket not counted as an upgrade")
	}
}

func TestLogUpgradeFieldsOnPlainRequest(t *testing.T) {
	line := logOf(t, acceptUpgrade, httptest.NewRequest(http.MethodGet, "/ws", nil))
	wantLog(t, line, map[string]any{"status": 200.0, "upgrade": nil})
}
