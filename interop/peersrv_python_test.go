package interop

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/wsclient"
)

// rvPeersrvPythonScript is a websockets server whose process_request
// refuses every request by its path: /redirect answers 302 with a
// Location, /forbidden 403 with a two-line body, /busy 503 with
// Retry-After and a body longer than MaxErrorBody.
const rvPeersrvPythonScript = `
import asyncio, json, sys
from http import HTTPStatus
import websockets

BIG = b"busy\n" + b"x" * (70 << 10)

async def process_request(path, headers):
    if path.startswith("/redirect"):
        return HTTPStatus.FOUND, [("Location", "ws://127.0.0.1:1/elsewhere")], b"moved to elsewhere\n"
    if path.startswith("/forbidden"):
        return HTTPStatus.FORBIDDEN, [("X-Why", "token")], "token required, ann 🐦\nsecond line\n".encode()
    if path.startswith("/busy"):
        return HTTPStatus.SERVICE_UNAVAILABLE, [("Retry-After", "7")], BIG
    return None

async def handler(ws, path):
    await ws.close()

async def main():
    server = await websockets.serve(handler, "127.0.0.1", 0, process_request=process_request, compression=None, ping_interval=None)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()

asyncio.run(main())
`

// TestPythonRefusals: docs/client.md "Errors": a non-101
// answer from websockets' server is a *HandshakeError with StatusCode,
// Status, Header and the first MaxErrorBody bytes of Body; a 3xx is not
// followed and carries its Location; the error's text is "wsclient:
// handshake refused: <status>: <first line of the body>"; Dial also
// returns the response, whose Body reads the captured bytes again.
func TestPythonRefusals(t *testing.T) {
	py, _ := python()
	if py == "" {
		unavailable(t, pythonStack().version)
	}
	script := filepath.Join(t.TempDir(), "server.py")
	if err := os.WriteFile(script, []byte(rvPeersrvPythonScript), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "python websockets (review)", py, script)
	for _, tc := range []struct {
		path, status, header, value, text string
		bodyLen                           int
	}{
		{"/redirect", "302 Found", "Location", "ws://127.0.0.1:1/elsewhere", "wsclient: handshake refused: 302 Found: moved to elsewhere", len("moved to elsewhere\n")},
		{"/forbidden", "403 Forbidden", "X-Why", "token", "wsclient: handshake refused: 403 Forbidden: token required, ann 🐦", len("token required, ann 🐦\nsecond line\n")},
		{"/busy", "503 Service Unavailable", "Retry-After", "7", "wsclient: handshake refused: 503 Service Unavailable: busy", wsclient.MaxErrorBody},
	} {
		t.Run(tc.path, func(t *testing.T) {
			_, resp, err := wsclient.Dial(rvPeersrvCtx(t), s.url+tc.path, nil)
			var he *wsclient.HandshakeError
			if !errors.As(err, &he) || !errors.Is(err, wsclient.ErrHandshake) {
				t.Fatalf("Dial returned %v (%T)", err, err)
			}
			if he.Status != tc.status || fmt.Sprint(he.StatusCode) != tc.status[:3] || he.Header.Get(tc.header) != tc.value || he.Proxy || he.Reason != "" {
				t.Fatalf("HandshakeError %+v", he)
			}
			if len(he.Body) != tc.bodyLen || err.Error() != tc.text {
				t.Fatalf("body of %d bytes, error %q; want %d bytes, %q", len(he.Body), err, tc.bodyLen, tc.text)
			}
			if resp == nil || resp.StatusCode != he.StatusCode {
				t.Fatalf("response %+v", resp)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != string(he.Body) || !strings.HasPrefix(string(b), tc.text[strings.LastIndex(tc.text, ": ")+2:]) {
				t.Fatalf("response body %.60q", b)
			}
		})
	}
}
