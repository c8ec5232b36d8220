// A WebSocket client on Node's ws, driven by colibri's interop tests: one
// command per line on stdin, one JSON answer per line on stdout (see
// interop/driver_test.go for the commands). It holds one connection.
"use strict";

const crypto = require("crypto");
const readline = require("readline");
const WebSocket = require("ws");

// gen returns the payload the tests name by kind and size; driver_test.go
// builds the same bytes.
function gen(kind, size) {
  if (kind === "binary") {
    const b = Buffer.alloc(size);
    for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 10)) & 0xff;
    return b;
  }
  const unit = "colibri 🐦 ünï ";
  const n = Buffer.byteLength(unit);
  return Buffer.from(unit.repeat(Math.floor(size / n)) + "x".repeat(size % n));
}

function describe(data, isBinary) {
  const b = Buffer.isBuffer(data) ? data : Buffer.concat(data);
  const r = {
    ok: true,
    event: "message",
    kind: isBinary ? "binary" : "text",
    size: b.length,
    sha256: crypto.createHash("sha256").update(b).digest("hex"),
  };
  if (!isBinary && b.length <= 4096) r.text = b.toString("utf8");
  return r;
}

let ws = null;
const events = []; // messages and the close, in order
let waiter = null;
let closeEvent = null;

function push(ev) {
  if (waiter) {
    const w = waiter;
    waiter = null;
    w(ev);
  } else {
    events.push(ev);
  }
}

function next() {
  if (events.length) return Promise.resolve(events.shift());
  if (closeEvent) return Promise.resolve(closeEvent);
  return new Promise((resolve) => (waiter = resolve));
}

function connect(c) {
  return new Promise((resolve) => {
    let perMessageDeflate = false;
    if (c.deflate) {
      const d = c.deflate;
      perMessageDeflate = { threshold: 0 };
      if (d.server_no_context_takeover) perMessageDeflate.serverNoContextTakeover = true;
      if (d.client_no_context_takeover) perMessageDeflate.clientNoContextTakeover = true;
      if (d.server_max_window_bits) perMessageDeflate.serverMaxWindowBits = d.server_max_window_bits;
      if (d.client_max_window_bits > 0) perMessageDeflate.clientMaxWindowBits = d.client_max_window_bits;
      else if (d.client_max_window_bits < 0) perMessageDeflate.clientMaxWindowBits = true;
    }
    let extensions = "";
    ws = new WebSocket(c.url, c.protocols || [], { perMessageDeflate, maxPayload: 64 << 20 });
    ws.on("upgrade", (res) => (extensions = res.headers["sec-websocket-extensions"] || ""));
    let opened = false;
    ws.on("open", () => {
      opened = true;
      resolve({ ok: true, protocol: ws.protocol, extensions });
    });
    ws.on("message", (data, isBinary) => push(describe(data, isBinary)));
    ws.on("close", (code, reason) => {
      closeEvent = { ok: true, event: "close", code, reason: reason.toString("utf8") };
      push(closeEvent);
    });
    ws.on("error", (err) => {
      if (!opened) resolve({ ok: false, error: String(err.message) });
    });
  });
}

function sent(err) {
  return err ? { ok: false, error: String(err.message) } : { ok: true };
}

async function run(c) {
  switch (c.op) {
    case "connect":
      return connect(c);
    case "send":
      return new Promise((resolve) =>
        ws.send(gen(c.kind, c.size), { binary: c.kind === "binary" }, (err) => resolve(sent(err))));
    case "sendText":
      return new Promise((resolve) => ws.send(c.text, { binary: false }, (err) => resolve(sent(err))));
    case "fragments": {
      // One message, a frame per size, cut anywhere: inside a UTF-8
      // sequence too.
      const p = gen(c.kind, c.sizes.reduce((a, b) => a + b, 0));
      let off = 0;
      let last = null;
      c.sizes.forEach((n, i) => {
        const fin = i === c.sizes.length - 1;
        last = new Promise((resolve) =>
          ws.send(p.subarray(off, off + n), { binary: c.kind === "binary", fin, compress: false }, (err) => resolve(sent(err))));
        off += n;
      });
      return last;
    }
    case "invalidUTF8":
      // ws sends a Buffer as a text frame as it is.
      return new Promise((resolve) =>
        ws.send(Buffer.from([0x6f, 0x6b, 0x20, 0xff]), { binary: false }, (err) => resolve(sent(err))));
    case "recv":
      return next();
    case "ping":
      return new Promise((resolve) => {
        ws.once("pong", (data) => resolve({ ok: true, pong: data.toString("utf8") }));
        ws.ping(Buffer.from(c.data));
      });
    case "close":
      ws.close(c.code, c.reason);
      for (;;) {
        const ev = await next();
        if (ev.event === "close") return ev;
      }
    case "exit":
      if (ws) ws.terminate();
      setImmediate(() => process.exit(0));
      return { ok: true };
    default:
      return { ok: false, error: "unknown command " + c.op };
  }
}

// Commands run one at a time, in order.
const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on("line", (line) => {
  chain = chain.then(async () => {
    let r;
    try {
      r = await run(JSON.parse(line));
    } catch (err) {
      r = { ok: false, error: String(err && err.message) };
    }
    process.stdout.write(JSON.stringify(r) + "\n");
  });
});
rl.on("close", () => chain.then(() => process.exit(0)));
