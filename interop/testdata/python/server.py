"""A WebSocket server on Python's websockets for colibri's interop tests,
the counterpart of testdata/node/server.js (see there): argv[1] is
"plain", "deflate" or "deflate-reset"; it prints {"port": N}, then a JSON
line per event."""

import asyncio
import json
import sys
from urllib.parse import parse_qs, urlsplit

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


def out(o):
    print(json.dumps(o), flush=True)


async def handler(ws, path):
    url = urlsplit(path)
    out({"event": "open", "path": url.path, "offer": ws.request_headers.get("Sec-WebSocket-Extensions", "")})
    try:
        if url.path == "/ping":
            pong = await ws.ping(b"server ping")
            await pong
            await ws.send("pong server ping")
        async for msg in ws:
            if url.path == "/close":
                q = parse_qs(url.query)
                await ws.close(int(q["code"][0]), q["reason"][0])
                break
            await ws.send(msg)
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    out({"event": "close", "path": url.path, "code": ws.close_code, "reason": ws.close_reason})


async def main():
    mode = sys.argv[1]
    kw = {"max_size": None, "ping_interval": None, "compression": None}
    if mode == "deflate":
        # websockets' own default: 12-bit windows both ways.
        kw["compression"] = "deflate"
    elif mode == "deflate-reset":
        kw["extensions"] = [ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)]
    server = await websockets.serve(handler, "127.0.0.1", 0, **kw)
    out({"port": server.sockets[0].getsockname()[1]})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


asyncio.run(main())
