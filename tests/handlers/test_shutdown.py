"""Graceful shutdown in-process: drain, then end the rest with a retry hint."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, sse_stream
from tests.prom import value
from tests.sse_client import contents, request
from tornado_sse.shutdown import GracefulShutdown


def q(text: str) -> str:
    return "/ai/streamChat?question=" + quote(text)


def shutdown_of(app: Running, drain_timeout: float, retry_ms: int = 1000) -> GracefulShutdown:
    return GracefulShutdown(app.relay, app.server.servers, drain_timeout=drain_timeout,
                            retry_ms=retry_ms)


async def test_drain_lets_streams_finish_then_ends_the_rest(make_app: Any, settings: Any,
                                                            fake: FakeUpstream) -> None:
    app = make_app(settings)
    finishing = sse_stream(["one", "two", "three"])
    role_and_partial = b"\n\n".join(sse_stream(["partial"]).split(b"\n\n")[:2]) + b"\n\n"
    fake.queue(Script.stream(finishing, piece=len(finishing) // 3 + 1, pause=0.2),
               Script(body=[role_and_partial], hang=True))
    a = await request(app.url(q("finishes")))
    b = await request(app.url(q("hangs")))
    await a.next_event()
    await b.next_event()
    while len(fake.received) < 2:
        await asyncio.sleep(0.01)

    shutdown = shutdown_of(app, drain_timeout=1.0, retry_ms=1000)
    report, a_events, b_events = await asyncio.gather(shutdown.run(), a.events(), b.events())

    assert contents(a_events) == "onetwothree"
    assert a_events[-1].json == {"reason": "stop"}
    # the hanging one: whatever it had, then a retry hint, then end "shutdown"
    assert contents(b_events) == "partial"
    assert [e.event for e in b_events[-2:]] == ["retry", "end"]
    assert 1000 <= int(b_events[-2].data) <= 2000  # jittered, at most twice the setting
    assert b_events[-1].json == {"reason": "shutdown"}
    assert re.search(rb'event: end\nid: [\w-]+:2\ndata: \{"reason":"shutdown"\}\n\n\Z', b.raw)
    # its upstream transfer was aborted
    await asyncio.wait_for(fake.received[1].closed.wait(), 2)
    assert not fake.received[1].finished
    assert (report.drained, report.ended) == (1, 1)
    assert app.relay.active == 0
    # no new connections
    with pytest.raises(OSError):
        await request(app.url("/healthz"))
    text = app.server.metrics.render()[0].decode()
    assert value(text, "tornado_sse_upstream_aborts_total", cause="shutdown") == 1
    assert value(text, "tornado_sse_streams_finished_total", reason="shutdown", code="") == 1


async def test_no_streams_returns_at_once(app: Running) -> None:
    report = await asyncio.wait_for(shutdown_of(app, drain_timeout=30).run(), 5)
    assert (report.drained, report.ended) == (0, 0)


async def test_second_signal_ends_streams_now(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script(hang=True))
    resp = await request(app.url(q("x")))
    await resp.next_event()
    shutdown = shutdown_of(app, drain_timeout=60)
    shutdown.signal()
    assert shutdown.requested.is_set()
    running = asyncio.ensure_future(shutdown.run())
    await asyncio.sleep(0.1)
    assert not running.done()
    shutdown.signal()  # the impatient second Ctrl-C
    report = await asyncio.wait_for(running, 5)
    assert report.ended == 1
    events = await resp.events()
    assert events[-1].json == {"reason": "shutdown"}


async def raw_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       path: str) -> tuple[int, dict[str, str], bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) != b"\r\n":
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def test_keep_alive_requests_refused_while_draining(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script(hang=True))
    held = await request(app.url(q("held")))
    await held.next_event()
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    try:
        status, _, _ = await raw_exchange(reader, writer, "/healthz")
        assert status == 200
        running = asyncio.ensure_future(shutdown_of(app, drain_timeout=0.5).run())
        await asyncio.sleep(0.05)
        # the same kept-alive connection: health says draining, streams are refused
        status, _, body = await raw_exchange(reader, writer, "/healthz")
        assert status == 503 and json.loads(body)["status"] == "draining"
        status, headers, body = await raw_exchange(reader, writer, q("new"))
        assert status == 503 and headers["retry-after"]
        assert json.loads(body)["error"]["code"] == "shutting_down"
        await running
    finally:
        writer.close()
