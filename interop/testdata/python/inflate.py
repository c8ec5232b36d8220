"""Inflates permessage-deflate messages with Python's zlib and exactly the
window colibri's interop test names: python3 inflate.py BITS takeover|reset.

stdin holds the messages' compressed payloads, each after its length as 4
bytes big-endian. For each message one line goes to stdout: the SHA-256 of
the inflated bytes and their length. zlib checks a distance against the
window only when it reaches back past the output of the current call, so
the output is taken one byte per call: then every back reference must lie
within the 2**BITS bytes of the window, and one that reaches further fails
with "invalid distance too far back"."""

import hashlib
import struct
import sys
import zlib

bits = int(sys.argv[1])
takeover = sys.argv[2] == "takeover"
data = sys.stdin.buffer.read()
d = zlib.decompressobj(wbits=-bits)
off = 0
while off < len(data):
    (n,) = struct.unpack(">I", data[off : off + 4])
    off += 4
    buf = data[off : off + n] + b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2
    off += n
    if not takeover:
        d = zlib.decompressobj(wbits=-bits)
    out = bytearray()
    while True:
        chunk = d.decompress(buf, 1)
        out += chunk
        buf = d.unconsumed_tail
        if not chunk and not buf:
            break
    print(hashlib.sha256(out).hexdigest(), len(out), flush=True)
