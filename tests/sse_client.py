"""A small raw-socket HTTP/1.1 SSE client for tests.

Independent of the library's parser (so a parser bug cannot hide itself), and in
full control of the connection: tests can read some events, then hang up.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


OPEN: list[SSEResponse] = []  # closed by an autouse fixture before the loop closes


def close_all() -> None:
    while OPEN:
        OPEN.pop().close()


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEResponse:
    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    raw: bytearray = field(default_factory=bytearray)
    _chunked: bool = False
    _buf: bytes = b""
    _eof: bool = False

    async def _read_body_piece(self) -> bytes:
        if self._eof:
            return b""
        if not self._chunked:
            data = await self.reader.read(65536)
            if not data:
                self._eof = True
            return data
        size_line = await self.reader.readline()
        if not size_line:
            self._eof = True
            return b""
        size = int(size_line.strip().split(b";")[0], 16)
        if size == 0:
            await self.reader.readline()
            self._eof = True
            return b""
        data = await self.reader.readexactly(size)
        await self.reader.readexactly(2)
        return data

    async def body(self) -> bytes:
        while not self._eof:
            self.raw += await self._read_body_piece()
        return bytes(self.raw)

    async def next_event(self, with_comments: bool = False) -> Event | None:
        """The next event (or comment, if asked); None at the end of the body."""
        while True:
            while b"\n\n" not in self._buf:
                piece = await self._read_body_piece()
                if not piece:
                    return None
                self.raw += piece
                self._buf += piece
            block, self._buf = self._buf.split(b"\n\n", 1)
            ev = Event()
            data: list[str] = []
            for line in block.decode().split("\n"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "":
                    ev.comment = value
                elif name == "data":
                    data.append(value)
                elif name == "event":
                    ev.event = value
                elif name == "id":
                    ev.id = value
                elif name == "retry":
                    ev.event = "retry"
                    data.append(value)
            ev.data = "\n".join(data)
            if ev.comment is not None and not data:
                if with_comments:
                    return ev
                continue
            return ev

    async def events(self, with_comments: bool = False) -> list[Event]:
        out = []
        while (ev := await self.next_event(with_comments)) is not None:
            out.append(ev)
        return out

    def close(self) -> None:
        self.writer.close()


async def request(url: str, method: str = "GET", body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> SSEResponse:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    hdrs: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode("latin1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    resp = SSEResponse(status, hdrs, reader, writer)
    OPEN.append(resp)
    resp._chunked = hdrs.get("transfer-encoding", "").lower() == "chunked"
    if not resp._chunked and "content-length" in hdrs:
        resp.raw += await reader.readexactly(int(hdrs["content-length"]))
        resp._eof = True
    return resp


def contents(events: list[Event]) -> str:
    return "".join(e.json["content"] for e in events if e.event == "update")
