// A WebSocket server on Node's ws for colibri's interop tests. argv[2] is
// "plain", "deflate" (context takeover allowed) or "deflate-reset". It
// prints {"port": N} once listening, then a JSON line per event:
//   {"event":"open","path":P,"offer":OFFER}
//   {"event":"close","path":P,"code":C,"reason":R}
// Paths: /echo echoes; /close?code=C&reason=R closes with them on the
// first message; /ping sends a PING "server ping" and, on its PONG, the
// text "pong " + the PONG's payload, then echoes.
"use strict";

const { WebSocketServer } = require("ws");

const mode = process.argv[2];
let perMessageDeflate = false;
if (mode === "deflate") perMessageDeflate = { threshold: 0 };
if (mode === "deflate-reset") perMessageDeflate = { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true };

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate, maxPayload: 64 << 20 });
wss.on("listening", () => out({ port: wss.address().port }));
wss.on("connection", (ws, req) => {
  const url = new URL(req.url, "http://localhost");
  const path = url.pathname;
  out({ event: "open", path, offer: req.headers["sec-websocket-extensions"] || "" });
  ws.on("message", (data, isBinary) => {
    if (path === "/close") ws.close(Number(url.searchParams.get("code")), url.searchParams.get("reason"));
    else ws.send(data, { binary: isBinary });
  });
  ws.on("pong", (data) => ws.send("pong " + data.toString()));
  ws.on("close", (code, reason) => out({ event: "close", path, code, reason: reason.toString() }));
  if (path === "/ping") ws.ping("server ping");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
