"""A fake OpenAI-compatible upstream that speaks real HTTP (tornado server on
loopback). Each request follows a :class:`Script`: status, raw body pieces with
pauses, or misbehaviour (hang, drop mid-stream). It records what it received and
when the relay closed each connection, so tests can assert cancellation from the
upstream's side."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler


def chunk_json(content: str | None = None, finish: str | None = None, role: str | None = None,
               **extra: Any) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
           "model": "fake", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    obj.update(extra)
    return obj


def sse_stream(deltas: Iterable[str], *, finish: str = "stop", eol: str = "\n",
               keepalive: bool = False, done: bool = True,
               usage: dict[str, int] | None = None) -> bytes:
    """The bytes of a well-formed OpenAI stream carrying ``deltas``."""
    out: list[str] = []

    def event(obj: Any) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        out.append(f"data: {data}{eol}{eol}")

    event(chunk_json("", role="assistant"))
    for i, d in enumerate(deltas):
        if keepalive and i % 2 == 0:
            out.append(f": keep-alive{eol}{eol}")
        event(chunk_json(d))
    event(chunk_json(finish=finish))
    if usage is not None:
        obj = chunk_json(usage=usage)
        obj["choices"] = []
        event(obj)
    if done:
        event("[DONE]")
    return "".join(out).encode()


@dataclass
class Script:
    status: int = 200
    content_type: str = "text/event-stream"
    body: list[bytes | float] = field(default_factory=list)  # bytes to write, float = sleep
    hang: bool = False  # after the body, wait until the client hangs up
    drop: bool = False  # after the body, cut the connection (no terminating chunk)
    headers_delay: float = 0.0  # hold the status line back this long

    @classmethod
    def stream(cls, data: bytes, *, piece: int | None = None, pause: float = 0.0,
               **kw: Any) -> Script:
        """``data`` written in ``piece``-byte writes (each flushed) with ``pause`` between."""
        if piece is None:
            return cls(body=[data], **kw)
        body: list[bytes | float] = []
        for i in range(0, len(data), piece):
            body.append(data[i:i + piece])
            if pause:
                body.append(pause)
        return cls(body=body, **kw)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    opened_at: float
    closed_at: float | None = None
    finished: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(RequestHandler):
    def initialize(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.record: Received | None = None

    def check_xsrf_cookie(self) -> None:
        pass

    async def post(self) -> None:
        record = Received(dict(self.request.headers), self.request.body, time.monotonic())
        self.record = record
        self.fake.received.append(record)
        script = self.fake.next_script(record)
        try:
            if script.headers_delay:
                await asyncio.sleep(script.headers_delay)
            self.set_status(script.status)
            self.set_header("Content-Type", script.content_type)
            if script.hang and not script.body:
                await record.closed.wait()
                return
            for item in script.body:
                if isinstance(item, float):
                    await asyncio.sleep(item)
                else:
                    self.write(item)
                    await self.flush()
            if script.hang:
                await record.closed.wait()
                return
            if script.drop:
                await self.flush()
                assert self.request.connection is not None
                self.request.connection.stream.close()  # type: ignore[attr-defined]
                return
            await self.finish()
            record.finished = True
        except StreamClosedError:
            pass

    def on_connection_close(self) -> None:
        if self.record is not None and self.record.closed_at is None:
            self.record.closed_at = time.monotonic()
            self.record.closed.set()


class FakeUpstream:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.scripts: deque[Script] = deque()
        self.default: Callable[[Received], Script] = lambda r: Script.stream(
            sse_stream(["Hello", ", ", "world", "!"]))
        self.server: HTTPServer | None = None
        self.port = 0

    def start(self) -> FakeUpstream:
        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(Application([(r"/v1/chat/completions", _Handler, {"fake": self})]))
        self.server.add_sockets(sockets)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    def next_script(self, record: Received) -> Script:
        return self.scripts.popleft() if self.scripts else self.default(record)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            await self.server.close_all_connections()
