package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// scrape returns the value of the Prometheus sample called name whose
// labels include every one of labels (`key="value"`), and whether there
// is one.
func scrape(t *testing.T, base, name string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
lines:
	for line := range strings.Lines(string(body)) {
		var set, value string
		if rest, ok := strings.CutPrefix(line, name+"{"); ok {
			if set, value, ok = strings.Cut(rest, "} "); !ok {
				continue
			}
		} else if value, ok = strings.CutPrefix(line, name+" "); !ok {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(","+set+",", ","+l+",") {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v, true
	}
	return 0, false
}

// waitSample waits until the sample has the value want: the server records
// some figures just after the client has seen their effect.
func waitSample(t *testing.T, base string, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := scrape(t, base, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s} = %v, want %v", name, strings.Join(labels, ","), got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsEndpointShowsConnections(t *testing.T) {
	base, srv, _ := startExample(t)
	echo := dial(t, wsURL(base, "/ws/echo"))
	if err := echo.WriteMessage(gorilla.TextMessage, []byte("ping me")); err != nil {
		t.Fatal(err)
	}
	echo.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := echo.ReadMessage(); err != nil || string(p) != "ping me" {
		t.Fatalf("echo: %q, %v", p, err)
	}
	dial(t, wsURL(base, "/ws/chat/lobby?username=ada"))
	waitMembers(t, srv, "lobby", 1)
	if _, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws/chat/lobby"), nil); err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial without a username: %v, want 400", err)
	}

	echoRoute, chatRoute := `http_route="/ws/echo"`, `http_route="/ws/chat/{room}"`
	waitSample(t, base, 1, "colibri_connections_open", echoRoute)
	waitSample(t, base, 1, "colibri_connections_open", chatRoute)
	waitSample(t, base, 1, "colibri_upgrades_total", echoRoute, `http_response_status_code="101"`, `colibri_upgrade_outcome="accepted"`)
	waitSample(t, base, 1, "colibri_upgrades_total", chatRoute, `http_response_status_code="400"`, `colibri_upgrade_outcome="refused"`)
	waitSample(t, base, 1, "colibri_messages_total", echoRoute, `network_io_direction="receive"`, `websocket_message_kind="text"`)
	waitSample(t, base, 7, "colibri_message_payload_bytes_total", echoRoute, `network_io_direction="transmit"`, `websocket_message_kind="text"`)
	waitSample(t, base, 1, "colibri_topics_members", `colibri_hub="chat"`)
	waitSample(t, base, 0, "colibri_topics_queue_messages", `colibri_hub="chat"`)
	if _, ok := scrape(t, base, "go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}

	echo.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(4000, "bye"))
	waitSample(t, base, 0, "colibri_connections_open", echoRoute)
	waitSample(t, base, 1, "colibri_closes_total", echoRoute, `websocket_close_code="4000"`, `websocket_close_by="peer"`)
	waitSample(t, base, 1, "colibri_connection_duration_seconds_count", echoRoute, `websocket_close_by="peer"`)
}
