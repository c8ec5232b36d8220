// The browser's own WebSocket, driven by colibri's interop tests through
// the DevTools protocol: drive(id, command) runs one command on
// connection id and resolves to its JSON answer (see
// interop/driver_test.go). A browser offers permessage-deflate on its
// own, cannot send PING, fragments or invalid UTF-8, and closes only with
// 1000 or 3000 to 4999 (WHATWG WebSocket standard).
"use strict";

const UNIT = "colibri 🐦 ünï ";

function gen(kind, size) {
  if (kind === "binary") {
    const b = new Uint8Array(size);
    for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 10)) & 0xff;
    return b;
  }
  const n = new TextEncoder().encode(UNIT).length;
  return UNIT.repeat(Math.floor(size / n)) + "x".repeat(size % n);
}

async function describe(data) {
  const text = typeof data === "string";
  const b = text ? new TextEncoder().encode(data) : new Uint8Array(data);
  const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", b));
  const r = {
    ok: true,
    event: "message",
    kind: text ? "text" : "binary",
    size: b.length,
    sha256: Array.from(sum, (x) => x.toString(16).padStart(2, "0")).join(""),
  };
  if (text && b.length <= 4096) r.text = data;
  return r;
}

class Driver {
  constructor() {
    this.events = [];
    this.waiter = null;
    this.closeEvent = null;
  }

  push(ev) {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(ev);
    } else {
      this.events.push(ev);
    }
  }

  next() {
    if (this.events.length) return Promise.resolve(this.events.shift());
    if (this.closeEvent) return Promise.resolve(this.closeEvent);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  connect(c) {
    return new Promise((resolve) => {
      const ws = new WebSocket(c.url, c.protocols || []);
      this.ws = ws;
      ws.binaryType = "arraybuffer";
      // Messages are described in order, one after the other.
      let chain = Promise.resolve();
      ws.onopen = () => resolve({ ok: true, protocol: ws.protocol, extensions: ws.extensions });
      ws.onmessage = (ev) => {
        chain = chain.then(async () => this.push(await describe(ev.data)));
      };
      ws.onclose = (ev) => {
        chain = chain.then(() => {
          this.closeEvent = { ok: true, event: "close", code: ev.code, reason: ev.reason };
          this.push(this.closeEvent);
        });
        if (ws.readyState !== WebSocket.OPEN) resolve({ ok: false, error: "closed " + ev.code });
      };
    });
  }

  async run(c) {
    switch (c.op) {
      case "connect":
        return this.connect(c);
      case "send":
        this.ws.send(gen(c.kind, c.size));
        return { ok: true };
      case "sendText":
        this.ws.send(c.text);
        return { ok: true };
      case "recv":
        return this.next();
      case "close":
        this.ws.close(c.code, c.reason);
        for (;;) {
          const ev = await this.next();
          if (ev.event === "close") return ev;
        }
      case "exit":
        if (this.ws) this.ws.close();
        return { ok: true };
      default:
        return { ok: false, error: "the browser cannot " + c.op };
    }
  }
}

const drivers = new Map();

async function drive(id, c) {
  if (!drivers.has(id)) drivers.set(id, new Driver());
  try {
    return JSON.stringify(await drivers.get(id).run(c));
  } catch (err) {
    return JSON.stringify({ ok: false, error: String(err && err.message) });
  }
}
