"""Bodies a hostile server sends, for `LocalServer` replies: a gzip bomb, endless
bodies, server-sent events."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from typing import Any

from aiohttp import web

MIB = 1 << 20


def gzip_bomb(mib: int) -> bytes:
    """A valid gzip stream of about `mib` KiB that inflates to `mib` MiB of zero bytes.

    Deflate repeats: after the first, each MiB of zeros flushed with Z_SYNC_FLUSH
    compresses to the same bytes, so they are computed once."""
    zeros = bytes(MIB)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = packer.compress(zeros) + packer.flush(zlib.Z_SYNC_FLUSH)
    again = packer.compress(zeros) + packer.flush(zlib.Z_SYNC_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    final_empty_block = b"\x03\x00"
    trailer = struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)
    return first + again * (mib - 1) + final_empty_block + trailer


def gzip_response(body: bytes) -> web.Response:
    return web.Response(body=body, headers={"Content-Type": "application/json",
                                            "Content-Encoding": "gzip"})


def endless(block: bytes, *, status: int = 200, first: bytes = b"",
            content_type: str = "application/json") -> Any:
    """A streamer that sends `first`, then `block` again and again until the client hangs up."""

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        await resp.prepare(request)
        try:
            await resp.write(first)
            while True:
                await resp.write(block)
        except (ConnectionError, RuntimeError):  # the client went away
            pass
        return resp

    return stream


def sse_event(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def sse_delta(content: Any, finish: str | None = None) -> bytes:
    return sse_event({"choices": [{"index": 0, "delta": {"content": content},
                                   "finish_reason": finish}]})


def sse_response(events: Iterable[bytes]) -> web.Response:
    return web.Response(body=b"".join(events), content_type="text/event-stream")
