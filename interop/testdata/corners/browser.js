// Scenarios for interop/review_ix_browser_test.go, evaluated in the
// driver page: each resolves to a JSON string.
"use strict";

globalThis.ix = (() => {
  const enc = new TextEncoder();
  const UNIT = "colibri 🐦 ünï ";

  // rnd is a small deterministic PRNG (mulberry32).
  function rnd(seed) {
    return () => {
      seed |= 0;
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  // make builds item {kind, size, seed}: "text" compressible, "bin"
  // compressible, "rand" random bytes, "randtext" random code points
  // (many of four bytes), "emoji" only four-byte characters.
  function make(it) {
    const r = rnd(it.seed || 1);
    switch (it.kind) {
      case "text":
        return UNIT.repeat(Math.floor(it.size / 19)) + "x".repeat(it.size % 19);
      case "bin": {
        const b = new Uint8Array(it.size);
        for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >> 10)) & 0xff;
        return b;
      }
      case "rand": {
        const b = new Uint8Array(it.size);
        for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
        return b;
      }
      case "randtext": {
        let s = "";
        let n = 0;
        while (n < it.size) {
          let cp;
          const k = r();
          if (k < 0.3) cp = 0x20 + Math.floor(r() * 0x5f);
          else if (k < 0.5) cp = 0x80 + Math.floor(r() * 0x700);
          else if (k < 0.7) cp = 0x800 + Math.floor(r() * 0xd000);
          else cp = 0x10000 + Math.floor(r() * 0xfffff);
          const c = String.fromCodePoint(cp);
          const l = enc.encode(c).length;
          if (n + l > it.size) {
            s += "x".repeat(it.size - n);
            break;
          }
          s += c;
          n += l;
        }
        return s;
      }
      case "emoji":
        return "🐦".repeat(Math.floor(it.size / 4)) + "x".repeat(it.size % 4);
    }
    throw new Error("kind " + it.kind);
  }

  function same(a, b) {
    if (typeof a === "string" || typeof b === "string") return a === b;
    const x = new Uint8Array(a);
    const y = new Uint8Array(b);
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }

  function size(d) {
    return typeof d === "string" ? enc.encode(d).length : d.byteLength;
  }

  // open connects and collects messages and the close event.
  function open(url, protocols) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, protocols || []);
      ws.binaryType = "arraybuffer";
      const st = { ws, msgs: [], waiters: [], close: null };
      ws.onmessage = (ev) => {
        st.msgs.push(ev.data);
        st.waiters.splice(0).forEach((w) => w());
      };
      ws.onclose = (ev) => {
        st.close = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
        st.waiters.splice(0).forEach((w) => w());
        resolve(st);
      };
      ws.onopen = () => resolve(st);
    });
  }

  function until(st, cond, ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      const check = () => {
        if (cond()) {
          clearTimeout(timer);
          resolve(true);
        } else st.waiters.push(check);
      };
      check();
    });
  }

  // echo sends every item of plan, pipelined, and compares the echoes.
  async function echo(url, plan, ms) {
    const st = await open(url);
    if (st.close) return JSON.stringify({ error: "not opened", close: st.close });
    const sent = plan.map(make);
    for (const p of sent) st.ws.send(p);
    await until(st, () => st.msgs.length >= sent.length || st.close, ms);
    const bad = [];
    sent.forEach((p, i) => {
      if (i >= st.msgs.length) bad.push(i + ": missing");
      else if (!same(p, st.msgs[i])) bad.push(i + ": " + plan[i].kind + " " + size(p) + " came back as " + typeof st.msgs[i] + " of " + size(st.msgs[i]));
    });
    const extensions = st.ws.extensions;
    st.ws.close(1000);
    await until(st, () => st.close, ms);
    return JSON.stringify({ extensions, received: st.msgs.length, bad, close: st.close });
  }

  // closed connects, sends text when given, and reports the close event
  // and any messages (their text, or their size).
  async function closed(url, text, ms) {
    const st = await open(url);
    globalThis.ixLastMsgs = st.msgs; // for a test to see the first message
    if (!st.close && text !== "") st.ws.send(text);
    await until(st, () => st.close, ms);
    const msgs = st.msgs.map((m) => (typeof m === "string" ? m : "binary " + m.byteLength));
    return JSON.stringify({ close: st.close, msgs });
  }

  // send connects, sends item and then text, and reports the close.
  async function sendThenClose(url, item, ms) {
    const st = await open(url);
    if (!st.close) st.ws.send(make(item));
    await until(st, () => st.close, ms);
    return JSON.stringify({ close: st.close, msgs: st.msgs.length });
  }

  // closeWith connects, waits for a first message, closes with
  // code/reason (code 0: none) and reports the close event.
  async function closeWith(url, code, reason, ms) {
    const st = await open(url);
    await until(st, () => st.msgs.length > 0 || st.close, ms);
    if (code === 0) st.ws.close();
    else st.ws.close(code, reason);
    await until(st, () => st.close, ms);
    return JSON.stringify({ close: st.close });
  }

  // frame opens url in an iframe, waits for its first message, then
  // removes the iframe (the page goes away).
  async function frameGone(url, ms) {
    const f = document.createElement("iframe");
    const ok = new Promise((resolve) => {
      const h = (ev) => {
        if (ev.data === "ix-open") {
          window.removeEventListener("message", h);
          resolve(true);
        }
      };
      window.addEventListener("message", h);
      setTimeout(() => resolve(false), ms);
    });
    f.srcdoc = "<script>const ws = new WebSocket(" + JSON.stringify(url) + "); ws.onmessage = () => parent.postMessage('ix-open', '*');<\/script>";
    document.body.appendChild(f);
    const opened = await ok;
    f.remove();
    return JSON.stringify({ opened });
  }

  return { echo, closed, sendThenClose, closeWith, frameGone };
})();
"ok";
