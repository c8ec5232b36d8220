package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/colibri-ws/colibri/middleware"
)

// chain applies middleware so that the first one listed runs first, as a
// router's Use does.
func chain(h http.Handler, mw ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// exampleLogger logs in text without the time, the duration and the stack,
// so that the output of the examples does not change from run to run.
func exampleLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == "duration" || a.Key == "stack") {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// wsRequest returns a WebSocket upgrade request, as a browser sends one.
func wsRequest(target, origin string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

// acceptWS stands in for a colibri ws route that accepts the upgrade: it
// records the decision in the response header and writes nothing.
func acceptWS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Upgrade", "websocket")
	w.Header().Set("Connection", "Upgrade")
}

var tokens = map[string]string{"t0k3n": "alice"}

func verifyToken(_ context.Context, token string) (string, error) {
	if user, ok := tokens[token]; ok {
		return user, nil
	}
	return "", errors.New("unknown token")
}

// A typical stack in front of WebSocket routes, outermost first. The chat
// route sees who is connecting and under which request id, and the log has
// a line for every attempt, whether it is accepted or refused.
func Example() {
	logger := exampleLogger()
	chat := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := middleware.UserFrom(r.Context())
		fmt.Printf("chat: %s joins (request %s)\n", user, middleware.RequestIDFrom(r.Context()))
		acceptWS(w, r)
	})
	h := chain(chat,
		middleware.RequestID,
		middleware.Log(logger),
		middleware.Recover(logger),
		middleware.Origins("*.example.com"),
		middleware.UpgradeRateLimit(5, 10),
		middleware.BearerWith(verifyToken, middleware.BearerOptions{QueryParam: "access_token"}),
	)

	for i, req := range []struct{ target, origin string }{
		{"/ws/chat?access_token=t0k3n", "https://app.example.com"},
		{"/ws/chat?access_token=t0k3n", "https://evil.test"},
		{"/ws/chat?access_token=stolen", "https://app.example.com"},
	} {
		r := wsRequest(req.target, req.origin)
		r.Header.Set("X-Request-ID", fmt.Sprint("req-", i+1))
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	// Output:
	// chat: alice joins (request req-1)
	// level=INFO msg=request method=GET path=/ws/chat status=101 bytes=0 remote=192.0.2.1:1234 request_id=req-1 upgrade=accepted
	// level=WARN msg=request method=GET path=/ws/chat status=403 bytes=47 remote=192.0.2.1:1234 request_id=req-2 upgrade=refused
	// level=WARN msg=request method=GET path=/ws/chat status=401 bytes=14 remote=192.0.2.1:1234 request_id=req-3 upgrade=refused
}

func ExampleRequestID() {
	var seen string
	h := middleware.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = middleware.RequestIDFrom(r.Context())
	}))

	// An id from a proxy in front is kept.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Request-ID", "edge-42")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println("handler:", seen, "response:", w.Header().Get("X-Request-ID"))

	// Without one, or with one that is not sane, a new id is made.
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Request-ID", "has spaces in it")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println("generated:", len(seen), "hex digits, same on the response:", w.Header().Get("X-Request-ID") == seen)
	// Output:
	// handler: edge-42 response: edge-42
	// generated: 16 hex digits, same on the response: true
}

func ExampleBearer() {
	h := middleware.Bearer(verifyToken)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := middleware.UserFrom(r.Context())
		fmt.Fprintf(w, "hello %s", user)
	}))

	for _, auth := range []string{"Bearer t0k3n", "Bearer stolen", ""} {
		r := httptest.NewRequest(http.MethodGet, "/me", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Printf("%d %q %q\n", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
	}
	// Output:
	// 200 "" "hello alice"
	// 401 "Bearer error=\"invalid_token\"" "invalid token\n"
	// 401 "Bearer" "unauthorized\n"
}

// Browsers cannot set an Authorization header on a WebSocket handshake, so
// a WebSocket route may take the token from the URL instead. The parameter
// is removed before the route sees the URL.
func ExampleBearerWith() {
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := middleware.UserFrom(r.Context())
		fmt.Printf("%s joins %s, query now %q\n", user, r.URL.Path, r.URL.RawQuery)
		acceptWS(w, r)
	})
	h := middleware.BearerWith(verifyToken, middleware.BearerOptions{QueryParam: "access_token"})(ws)

	h.ServeHTTP(httptest.NewRecorder(), wsRequest("/ws/chat?room=go&access_token=t0k3n", ""))
	// Output:
	// alice joins /ws/chat, query now "room=go"
}

func ExampleBasicAuth() {
	verify := middleware.BasicAuthUsers(map[string]string{"alice": "correct horse"})
	h := middleware.BasicAuth("chat", verify)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := middleware.UserFrom(r.Context())
		fmt.Fprintf(w, "hello %s", user)
	}))

	for _, password := range []string{"correct horse", "battery staple"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth("alice", password)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Printf("%d %q %q\n", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
	}
	// Output:
	// 200 "" "hello alice"
	// 401 "Basic realm=\"chat\", charset=\"UTF-8\"" "unauthorized\n"
}

func ExampleOrigins() {
	h := middleware.Origins("*.example.com", "localhost:*")(http.HandlerFunc(acceptWS))

	for _, origin := range []string{
		"https://app.example.com", // matches *.example.com
		"http://localhost:5173",   // matches localhost:*
		"https://chat.test",       // the server's own host
		"",                        // no Origin: not a browser page
		"https://evil.test",
		"null",
	} {
		r := wsRequest("/ws", origin)
		r.Host = "chat.test"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%-25q %d %s", origin, w.Code, w.Body)))
	}
	// Output:
	// "https://app.example.com" 200
	// "http://localhost:5173"   200
	// "https://chat.test"       200
	// ""                        200
	// "https://evil.test"       403 origin "https://evil.test" is not allowed here
	// "null"                    403 opaque origin "null" (a sandboxed page or a local file) cannot be allowed
}

// Log tells an accepted WebSocket upgrade (status 101) from a refused one.
func ExampleLog() {
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		if r.URL.Query().Get("room") == "" {
			http.Error(w, "room required", http.StatusBadRequest)
			return
		}
		acceptWS(w, r)
	})
	h := middleware.Log(exampleLogger())(route)

	h.ServeHTTP(httptest.NewRecorder(), wsRequest("/ws?room=go", ""))
	h.ServeHTTP(httptest.NewRecorder(), wsRequest("/ws", ""))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/ws?room=go", nil))
	// Output:
	// level=INFO msg=request method=GET path=/ws status=101 bytes=0 remote=192.0.2.1:1234 upgrade=accepted
	// level=WARN msg=request method=GET path=/ws status=400 bytes=14 remote=192.0.2.1:1234 upgrade=refused
	// level=WARN msg=request method=GET path=/ws status=426 bytes=17 remote=192.0.2.1:1234
}

func ExampleRecover() {
	h := middleware.Recover(exampleLogger())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/")
		fmt.Fprint(w, parts[2]) // a bug: the path may have fewer parts
	}))

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/bug", nil))
	fmt.Println(w.Code, w.Body.String())
	// Output:
	// level=ERROR msg=panic panic="runtime error: index out of range [2] with length 2" method=GET path=/bug
	// 500 Internal Server Error
}

func ExampleUpgradeRateLimit() {
	// One upgrade per second per client IP, in bursts of up to two.
	h := middleware.UpgradeRateLimit(1, 2)(http.HandlerFunc(acceptWS))

	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, wsRequest("/ws", ""))
		fmt.Println(w.Code, w.Header()["Retry-After"])
	}
	// Plain HTTP requests are not counted.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ws", nil))
	fmt.Println(w.Code)
	// Output:
	// 200 []
	// 200 []
	// 429 [1]
	// 200
}
