"""Upstream bytes are relayed from inside libcurl's write callback: what happens
when the relay fails there, or a stream is aborted from there."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, sse_stream
from tests.sse_client import contents, request
from tornado_sse.relay import RelayedStream


async def test_exception_while_relaying_a_chunk_ends_the_stream_as_internal(
        app: Running, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: RelayedStream, chunk: bytes) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(RelayedStream, "on_data", broken)
    fake.queue(Script(body=[sse_stream(["a"], done=False)], hang=True))
    resp = await request(app.url("/ai/streamChat?question=x"))
    events = await asyncio.wait_for(resp.events(), 5)
    assert events[-2].event == "error" and events[-2].json["code"] == "internal"
    assert events[-1].json == {"reason": "error"}
    assert b"boom" not in resp.raw
    # libcurl stopped the transfer: the upstream saw its connection closed.
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert "relaying an upstream chunk failed" in caplog.text


async def test_abort_from_inside_the_write_callback(app: Running, fake: FakeUpstream,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A listener that gives up while a chunk is being delivered (the
    # slow-client cut-off does this) aborts the transfer from inside
    # libcurl's callback, where removing the handle is not allowed.
    original = RelayedStream.on_data
    calls: list[Any] = []

    def cancel_after_first(self: RelayedStream, chunk: bytes) -> None:
        original(self, chunk)
        calls.append(chunk)
        if len(calls) == 1:
            self.cancel("cancelled")

    monkeypatch.setattr(RelayedStream, "on_data", cancel_after_first)
    fake.queue(Script.stream(sse_stream(["a"] * 50), piece=40, pause=0.01))
    resp = await request(app.url("/ai/streamChat?question=x"))
    events = await asyncio.wait_for(resp.events(), 5)
    assert events[-1].json == {"reason": "cancelled"}
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert not fake.received[0].finished
    await asyncio.sleep(0.05)
    assert len(calls) == 1  # nothing was delivered after the abort
    assert app.relay.active == 0
    # The next stream works (the client's pool is intact).
    monkeypatch.setattr(RelayedStream, "on_data", original)
    again = await (await request(app.url("/ai/streamChat?question=y"))).events()
    assert contents(again) == "Hello, world!"
