"""ClientChannel flow control with a fake writer: merging while the client lags,
the slow_client cut-off, and the memory bound. No sockets; the test decides
when the "kernel" takes each write."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tornado_sse.channel import ClientChannel
from tornado_sse.errors import StreamError
from tornado_sse.session import Outcome, StreamSession
from tornado_sse.timer_wheel import TimerWheel


class FakeFlush:
    """A flush future the test resolves by hand."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[FakeFlush], None]] = []
        self._exc: BaseException | None = None

    def add_done_callback(self, cb: Callable[[FakeFlush], None]) -> None:
        self.callbacks.append(cb)

    def exception(self) -> BaseException | None:
        return self._exc

    def resolve(self, exc: BaseException | None = None) -> None:
        self._exc = exc
        for cb in self.callbacks:
            cb(self)


class FakeWriter:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.flushes: list[FakeFlush] = []
        self.finished = False
        self.aborted = False

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def flush(self) -> Any:
        fut = FakeFlush()
        self.flushes.append(fut)
        return fut

    def finish(self) -> Any:
        self.finished = True
        return FakeFlush()

    def abort_connection(self) -> None:
        self.aborted = True

    def drain(self) -> None:
        """The kernel takes everything written so far."""
        pending, self.flushes = self.flushes, []
        for fut in pending:
            fut.resolve()

    def updates(self) -> list[tuple[str, str]]:
        out = []
        for chunk in self.chunks:
            text = chunk.decode()
            if text.startswith("event: update\n"):
                lines = dict(line.split(": ", 1) for line in text.strip().split("\n"))
                out.append((lines["id"].rsplit(":", 1)[1], json.loads(lines["data"])["content"]))
        return out

    def events(self) -> list[str]:
        return [c.decode().split("\n", 1)[0] for c in self.chunks]


def make(max_buffer: int = 1000, merge_threshold: int = 100
         ) -> tuple[ClientChannel, FakeWriter, StreamSession, list[Any]]:
    writer = FakeWriter()
    closed: list[Any] = []
    channel = ClientChannel(writer, TimerWheel(clock=lambda: 0.0), heartbeat=0,
                            max_buffer=max_buffer, merge_threshold=merge_threshold,
                            on_close=lambda ch, err: closed.append(err))
    session = StreamSession("s1")
    session.attach(channel)
    channel.open(session, start=False)
    return channel, writer, session, closed


async def test_fast_client_gets_one_update_per_delta() -> None:
    channel, writer, session, _ = make()
    for text in ["a", "b", "c"]:
        session.push(text)
        writer.drain()
    assert writer.updates() == [("1", "a"), ("2", "b"), ("3", "c")]
    assert channel.merged == 0 and channel.inflight == 0


async def test_lagging_client_gets_pending_deltas_merged_into_one_update() -> None:
    channel, writer, session, _ = make(merge_threshold=100)
    session.push("x" * 150)  # sent at once; now 150+ bytes unflushed: lagging
    for text in ["a", "b", "c", "d"]:
        session.push(text)
    assert [seq for seq, _ in writer.updates()] == ["1"]  # the rest waits, merged
    writer.drain()  # the client caught up: the merged update goes out
    assert writer.updates()[1:] == [("5", "abcd")]  # id = the last delta merged
    assert channel.merged == 1
    writer.drain()
    session.push("e")  # no longer lagging: one update per delta again
    assert writer.updates()[-1] == ("6", "e")


async def test_end_flushes_pending_text_before_end() -> None:
    _channel, writer, session, closed = make(merge_threshold=10)
    session.push("0123456789ab")
    session.push("y")
    session.push("z")
    session.end(Outcome("stop"))
    assert writer.updates() == [("1", "0123456789ab"), ("3", "yz")]
    assert writer.events()[-1] == "event: end"
    assert writer.finished and not writer.aborted
    assert closed == [None]


async def test_past_max_buffer_the_client_is_cut_off_with_slow_client() -> None:
    channel, writer, session, closed = make(max_buffer=1000, merge_threshold=100)
    session.push("x" * 200)
    n = 0
    while not channel.closed:
        n += 1
        session.push("y" * 50)
        assert n < 100
    assert isinstance(closed[0], StreamError) and closed[0].code == "slow_client"
    assert channel.error is closed[0]
    assert writer.events()[-2:] == ["event: error", "event: end"]
    error = json.loads(writer.chunks[-2].decode().split("data: ", 1)[1])
    assert error == {"msg": "The connection could not keep up with the stream.",
                     "code": "slow_client", "retryable": True}
    assert writer.aborted  # the unread bytes are dropped with the connection
    # What was held never exceeded the cap by more than the delta that tipped
    # it over and the two closing events.
    closing = len(writer.chunks[-1]) + len(writer.chunks[-2])
    assert channel.peak_buffered <= 1000 + 50 + closing
    session.push("later")  # a closed channel ignores the rest
    assert writer.events()[-1] == "event: end"


async def test_failed_flush_disconnects_without_error_event() -> None:
    channel, writer, session, closed = make()
    session.push("a")
    writer.flushes[0].resolve(ConnectionResetError())
    assert channel.closed and closed == [None]
    assert not writer.finished
