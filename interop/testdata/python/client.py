"""A WebSocket client on Python's websockets, driven by colibri's interop
tests: one command per line on stdin, one JSON answer per line on stdout
(see interop/driver_test.go for the commands). It holds one connection."""

import asyncio
import hashlib
import json
import sys

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import OP_TEXT

UNIT = "colibri 🐦 ünï "
# Byte i of a binary payload is (7i + i/1024) mod 256, so 1 KiB block j
# is BLOCKS[j mod 256].
BLOCKS = [bytes((7 * k + j) & 0xFF for k in range(1024)) for j in range(256)]


def gen(kind, size):
    """The payload the tests name by kind and size (as driver_test.go)."""
    if kind == "binary":
        n = (size + 1023) // 1024
        return b"".join(BLOCKS[j & 0xFF] for j in range(n))[:size]
    n = len(UNIT.encode())
    return UNIT * (size // n) + "x" * (size % n)


def describe(msg):
    b = msg if isinstance(msg, bytes) else msg.encode()
    r = {
        "ok": True,
        "event": "message",
        "kind": "binary" if isinstance(msg, bytes) else "text",
        "size": len(b),
        "sha256": hashlib.sha256(b).hexdigest(),
    }
    if isinstance(msg, str) and len(b) <= 4096:
        r["text"] = msg
    return r


class Driver:
    def __init__(self):
        self.ws = None

    def closed(self):
        rcvd = self.ws.close_rcvd
        if rcvd is None:
            return {"ok": True, "event": "close", "code": 1006, "reason": ""}
        return {"ok": True, "event": "close", "code": rcvd.code, "reason": rcvd.reason}

    async def connect(self, c):
        kw = {"max_size": None, "ping_interval": None, "close_timeout": 10}
        d = c.get("deflate")
        if d is None:
            kw["compression"] = None
        else:
            cmwb = d.get("client_max_window_bits", 0)
            kw["extensions"] = [
                ClientPerMessageDeflateFactory(
                    server_no_context_takeover=d.get("server_no_context_takeover", False),
                    client_no_context_takeover=d.get("client_no_context_takeover", False),
                    server_max_window_bits=d.get("server_max_window_bits") or None,
                    client_max_window_bits=True if cmwb < 0 else (cmwb or None),
                )
            ]
            kw["compression"] = None  # the extension above is the only offer
        if c.get("protocols"):
            kw["subprotocols"] = c["protocols"]
        try:
            self.ws = await websockets.connect(c["url"], **kw)
        except Exception as e:  # noqa: BLE001 - reported to the test
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
        return {
            "ok": True,
            "protocol": self.ws.subprotocol or "",
            "extensions": self.ws.response_headers.get("Sec-WebSocket-Extensions", ""),
        }

    async def run(self, c):
        op = c["op"]
        ws = self.ws
        if op == "connect":
            return await self.connect(c)
        if op == "send":
            await ws.send(gen(c["kind"], c["size"]))
        elif op == "sendText":
            await ws.send(c["text"])
        elif op == "fragments":
            # websockets sends an iterable as one fragmented message; text
            # fragments must be whole characters, so the tests cut text
            # between them.
            p = gen(c["kind"], sum(c["sizes"]))
            b = p if isinstance(p, bytes) else p.encode()
            parts, off = [], 0
            for n in c["sizes"]:
                parts.append(b[off : off + n])
                off += n
            if c["kind"] == "text":
                parts = [x.decode() for x in parts]
            await ws.send(parts)
        elif op == "invalidUTF8":
            # The public API sends only valid text; the protocol's frame
            # writer sends the bytes as they are.
            await ws.write_frame(True, OP_TEXT, b"ok \xff")
        elif op == "recv":
            try:
                return describe(await ws.recv())
            except ConnectionClosed:
                return self.closed()
        elif op == "ping":
            pong = await ws.ping(c["data"].encode())
            await pong
            return {"ok": True, "pong": c["data"]}
        elif op == "close":
            await ws.close(c["code"], c["reason"])
            return self.closed()
        elif op == "exit":
            return None
        else:
            return {"ok": False, "error": "unknown command " + op}
        return {"ok": True}


async def main():
    loop = asyncio.get_running_loop()
    d = Driver()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        try:
            r = await d.run(json.loads(line))
        except Exception as e:  # noqa: BLE001 - reported to the test
            r = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        if r is None:
            print(json.dumps({"ok": True}), flush=True)
            break
        print(json.dumps(r), flush=True)
    if d.ws is not None:
        d.ws.transport.abort()


asyncio.run(main())
