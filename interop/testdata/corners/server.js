// A WebSocket server on Node's ws for interop/review_ix_servers_test.go.
// argv[2] is "plain" or "deflate" (threshold 0, context takeover). It
// prints {"port": N}, then a JSON line per connection once its TCP
// connection closed:
//   {"event":"end","path":P,"code":C,"reason":R,"pongs":[...],
//    "remoteFinFirst":B,"errors":[...]}
// remoteFinFirst: the client ended its side of TCP before ws ended ours.
// Paths: /echo echoes; /close?code=C&reason=R closes with them on the
// first message; /ping sends PINGs with payloads "", "p1", 125 bytes and
// binary bytes, then, once all are answered, the text "pongs" and echoes.
"use strict";

// ws is the one installed for the suite (npm ci --prefix interop/testdata/node).
const { WebSocketServer } = require(require("path").join(__dirname, "..", "node", "node_modules", "ws"));

const mode = process.argv[2];
const perMessageDeflate = mode === "deflate" ? { threshold: 0 } : false;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate, maxPayload: 64 << 20 });
wss.on("listening", () => out({ port: wss.address().port }));
wss.on("connection", (ws, req) => {
  const url = new URL(req.url, "http://localhost");
  const path = url.pathname;
  const sock = req.socket;
  const st = { event: "end", path, code: 0, reason: "", pongs: [], remoteFinFirst: false, errors: [] };
  let weEnded = false;
  const end = sock.end.bind(sock);
  sock.end = (...a) => {
    weEnded = true;
    return end(...a);
  };
  const destroy = sock.destroy.bind(sock);
  sock.destroy = (...a) => {
    weEnded = true;
    return destroy(...a);
  };
  sock.on("end", () => {
    if (!weEnded) st.remoteFinFirst = true;
  });
  sock.on("error", (e) => st.errors.push("socket: " + e.code));
  ws.on("error", (e) => st.errors.push("ws: " + e.message));
  ws.on("message", (data, isBinary) => {
    if (path === "/close") ws.close(Number(url.searchParams.get("code")), url.searchParams.get("reason"));
    else ws.send(data, { binary: isBinary });
  });
  const pings = [Buffer.alloc(0), Buffer.from("p1"), Buffer.from("x".repeat(125)), Buffer.from([0, 255, 128, 10])];
  ws.on("pong", (data) => {
    st.pongs.push(data.toString("hex"));
    if (st.pongs.length === pings.length) ws.send("pongs");
  });
  ws.on("close", (code, reason) => {
    st.code = code;
    st.reason = reason.toString();
  });
  sock.on("close", () => out(st));
  if (path === "/ping") pings.forEach((p) => ws.ping(p));
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
