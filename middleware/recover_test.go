package middleware

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func panicking(v any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(v) })
}

func TestRecoverAnswers500WhenNothingWritten(t *testing.T) {
	logger, buf := jsonLogger()
	h := RequestID(Recover(logger)(panicking("boom")))
	r := httptest.NewRequest(http.MethodPost, "/items?secret=1", nil)
	r.Header.Set(RequestIDHeader, "req-7")
	w := serve(h, r)

	if w.Code != http.StatusInternalServerError || w.Body.String() != "Internal Server Error\n" {
		t.Errorf("got %d %q, want 500 Internal Server Error", w.Code, w.Body)
	}
	line := oneLogLine(t, buf)
	for k, want := range map[string]any{
		"level": "ERROR", "msg": "panic", "panic": "boom",
		"method": "POST", "path": "/items", "request_id": "req-7",
	} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	stack, _ := line["stack"].(string)
	if !strings.Contains(stack, "panicking") {
		t.Errorf("stack does not show the panicking function:\n%s", stack)
	}
}

func TestRecoverKeepsStartedResponse(t *testing.T) {
	logger, buf := jsonLogger()
	h := Recover(logger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("partial"))
		panic("late")
	}))
	w := httptest.NewRecorder()
	var got any
	func() {
		defer func() { got = recover() }()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	if w.Code != http.StatusAccepted || w.Body.String() != "partial" {
		t.Errorf("got %d %q, want the started 202 response untouched", w.Code, w.Body)
	}
	// Aborted, so that net/http cuts the response off rather than end it
	// as if it were whole.
	if got != any(http.ErrAbortHandler) {
		t.Errorf("recovered %v, want http.ErrAbortHandler", got)
	}
	if line := oneLogLine(t, buf); line["panic"] != "late" {
		t.Errorf("log panic = %v, want late", line["panic"])
	}
}

func TestRecoverPassesErrAbortHandlerOn(t *testing.T) {
	logger, buf := jsonLogger()
	h := Recover(logger)(panicking(http.ErrAbortHandler))
	w := httptest.NewRecorder()
	var got any
	func() {
		defer func() { got = recover() }()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	if got != any(http.ErrAbortHandler) {
		t.Errorf("recovered %v, want http.ErrAbortHandler passed on", got)
	}
	if buf.Len() != 0 {
		t.Errorf("logged %s, want nothing", buf)
	}
	if w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" {
		t.Errorf("wrote %q with %v, want nothing", w.Body, w.Header())
	}
}

func TestRecoverDropsUpgradeDecision(t *testing.T) {
	logger, _ := jsonLogger()
	h := Recover(logger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acceptUpgrade.ServeHTTP(w, r)
		panic("after the decision")
	}))
	w := serve(h, upgradeRequest("/ws"))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", w.Code)
	}
	if w.Header().Get("Upgrade") != "" || w.Header().Get("Connection") != "" {
		t.Errorf("500 carries upgrade fields: %v", w.Header())
	}
}

func TestRecoverWithoutPanic(t *testing.T) {
	logger, buf := jsonLogger()
	w := serve(Recover(logger)(ok), httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusOK || w.Body.String() != "ok" || buf.Len() != 0 {
		t.Errorf("got %d %q and log %q; want 200 ok and no log", w.Code, w.Body, buf)
	}
}

// TestRecoverNilLoggerUsesDefault changes the default logger, so it does
// not run in parallel.
func TestRecoverNilLoggerUsesDefault(t *testing.T) {
	logger, buf := jsonLogger()
	old := slog.Default()
	slog.SetDefault(logger)
	defer slog.SetDefault(old)

	w := serve(Recover(nil)(panicking("boom")), httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", w.Code)
	}
	if line := oneLogLine(t, buf); line["panic"] != "boom" {
		t.Errorf("log panic = %v, want boom", line["panic"])
	}
}
