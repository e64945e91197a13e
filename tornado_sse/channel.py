"""One client connection listening to a stream: encoding, flow control, heartbeats.

Flow control: every write is flushed at once, and the bytes that the kernel has not
yet taken are counted. While that count is above ``merge_threshold`` the client is
lagging: further text deltas are merged into one pending ``update`` instead of
queueing one event each. Past ``max_buffer`` bytes the client is cut off with
``slow_client``, so a reader that stops reading can never grow our memory without
bound.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tornado.concurrent import Future
from tornado.iostream import StreamClosedError

from .errors import StreamError
from .resume import event_id
from .session import StreamSession
from .sse import encode_comment, encode_event, encode_retry
from .timer_wheel import Timer, TimerWheel

log = logging.getLogger("tornado_sse.channel")

HEARTBEAT = encode_comment("heartbeat")


class ResponseWriter(Protocol):
    """What a channel needs from an HTTP response (a RequestHandler has it all)."""

    def write(self, chunk: bytes) -> None: ...

    def flush(self) -> Awaitable[None] | None:
        """Send what was written. ``None`` means the kernel took all of it."""

    def finish(self) -> Awaitable[None]: ...

    def abort_connection(self) -> None: ...


# Non-ASCII kept as is (PHP's JSON_UNESCAPED_UNICODE); compact separators. One
# instance: json.dumps with options builds a new encoder on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_data(obj: Any) -> str:
    return _JSON.encode(obj)


class ClientChannel:
    def __init__(
        self,
        writer: ResponseWriter,
        wheel: TimerWheel,
        *,
        heartbeat: float = 15.0,
        max_buffer: int = 256 * 1024,
        merge_threshold: int = 16 * 1024,
        on_close: Callable[[ClientChannel, StreamError | None], None] | None = None,
    ) -> None:
        self._writer = writer
        self._wheel = wheel
        self._heartbeat = heartbeat
        self._max_buffer = max_buffer
        self._merge_threshold = merge_threshold
        self._on_close = on_close
        self.inflight = 0  # bytes handed to the connection, not yet taken by the kernel
        self._pending: list[str] = []  # merged text while the client lags
        self._pending_seq = 0
        self._pending_bytes = 0
        self._last_write = wheel.clock()
        self._hb_timer: Timer | None = None
        self.closed = False
        self.done: Future[None] = Future()
        # The writer's finish() result: resolves once the last bytes were
        # flushed (shutdown waits on it before closing connections).
        self.finished: Awaitable[None] | None = None
        self.updates_sent = 0
        self.bytes_sent = 0
        self.heartbeats = 0
        self.merged = 0
        # High-water mark of what we hold for this client (unsent + merged):
        # the bound the slow-client policy promises, observable by tests.
        self.peak_buffered = 0
        self.error: StreamError | None = None  # why this client was cut off, if it was

    # -- writing ---------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self.closed:
            return
        self._last_write = self._wheel.clock()
        self.bytes_sent += len(data)
        self.inflight += len(data)
        self._note_buffered()
        try:
            self._writer.write(data)
            fut = self._writer.flush()
        except StreamClosedError:
            self.disconnect()
            return
        size = len(data)
        if fut is None:
            # The writer handed it all to the kernel already: nothing to wait
            # for, and no callback to schedule (the common case, per delta).
            self.inflight -= size
            return
        # Flush futures resolve once the kernel took the bytes; a failure means
        # the client is gone, which on_connection_close reports separately.
        fut.add_done_callback(lambda f: self._on_flushed(f, size))  # type: ignore[attr-defined]

    def _note_buffered(self) -> None:
        buffered = self.inflight + self._pending_bytes
        if buffered > self.peak_buffered:
            self.peak_buffered = buffered

    def _on_flushed(self, fut: Future[None], size: int) -> None:
        self.inflight -= size
        if fut.exception() is not None:
            self.disconnect()
            return
        if self._pending and self.inflight < self._merge_threshold:
            self._send_pending()

    def _send_pending(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self.merged += 1
        self._send(self._update_bytes(self._pending_seq, text))

    def _update_bytes(self, seq: int, content: str) -> bytes:
        # JSON never contains a raw CR or LF, so one data line is always right
        # and the general encoder's line splitting can be skipped on this hot
        # path; encoding the string alone hits the C fast path.
        return (
            f"event: update\nid: {self._stream_id}:{seq}\ndata: "
            f'{{"content":{_JSON.encode(content)}}}\n\n'
        ).encode()

    def _schedule_heartbeat(self) -> None:
        if self._heartbeat > 0 and not self.closed:
            self._hb_timer = self._wheel.call_at(self._last_write + self._heartbeat,
                                                 self._heartbeat_due)

    def _heartbeat_due(self) -> None:
        if self.closed:
            return
        if self._wheel.clock() - self._last_write >= self._heartbeat - self._wheel.resolution:
            self.heartbeats += 1
            self._send(HEARTBEAT)
        self._schedule_heartbeat()

    # -- lifecycle -------------------------------------------------------------

    _stream_id = ""
    # Updates up to this seq are not sent: a resumed client has them already
    # (a mirror of a remote stream may still be catching up to where it was).
    _seen = 0

    def open(self, session: StreamSession, retry_ms: int | None = None,
             start: bool = True, seen: int = 0) -> None:
        """Write the preamble (``retry:`` and ``start``) and begin heartbeats.

        ``start`` carries the id ``<stream>:0`` so that a client cut off before
        the first update still reconnects as a resume, not as a new question.
        A resumed client passes ``start=False`` and the last ``seen`` seq.
        """
        self._stream_id = session.id
        self._seen = seen
        preamble = encode_retry(retry_ms) if retry_ms is not None else b""
        if start:
            preamble += encode_event(json_data({"stream": session.id}), event="start",
                                     id=event_id(session.id, 0))
        if preamble:
            self._send(preamble)
        self._schedule_heartbeat()

    def start_heartbeats(self) -> None:
        """Begin ``: heartbeat`` comments without a session (:meth:`open` does it too)."""
        if self._hb_timer is None:
            self._schedule_heartbeat()

    def send_event(self, data: str, event: str | None = None, id: str | None = None) -> None:
        """Write one arbitrary event now (the porting API's ``send``).

        Such events cannot be merged, so a client that lets more than
        ``max_buffer`` bytes pile up is cut off with ``slow_client``.
        """
        if self.closed:
            return
        if self.inflight > self._max_buffer:
            self.fail(StreamError("slow_client", f"{self.inflight} bytes unsent"))
            return
        self._send(encode_event(data, event=event, id=id))

    def send_comment(self, text: str) -> None:
        self._send(encode_comment(text))

    def send_retry(self, ms: int) -> None:
        self._send(encode_retry(ms))

    def on_update(self, session: StreamSession, seq: int, content: str) -> None:
        if self.closed or seq <= self._seen:
            return
        if self.inflight < self._merge_threshold and not self._pending:
            self.updates_sent += 1
            self._send(self._update_bytes(seq, content))
            return
        # The client lags: merge instead of queueing one event per delta.
        self._pending.append(content)
        self._pending_seq = seq
        self._pending_bytes += len(content.encode())
        self._note_buffered()
        if self.inflight + self._pending_bytes > self._max_buffer:
            self.fail(StreamError("slow_client", f"{self.inflight + self._pending_bytes} bytes unsent"))

    def on_updates(self, session: StreamSession, first_seq: int, contents: list[str]) -> None:
        """Deltas that arrived together (one upstream read): one event each,
        but one write for all of them while the client keeps up."""
        if self.closed:
            return
        if (first_seq > self._seen and self.inflight < self._merge_threshold
                and not self._pending):
            self.updates_sent += len(contents)
            self._send(b"".join(self._update_bytes(first_seq + i, content)
                                for i, content in enumerate(contents)))
            return
        for i, content in enumerate(contents):
            self.on_update(session, first_seq + i, content)

    def replay(self, items: list[tuple[int, str]]) -> None:
        """Send missed deltas as one merged update (after a reconnect)."""
        items = [item for item in items if item[0] > self._seen]
        if items:
            self.updates_sent += 1
            self._send(self._update_bytes(items[-1][0], "".join(c for _, c in items)))

    def on_end(self, session: StreamSession) -> None:
        outcome = session.outcome
        assert outcome is not None
        if self._pending:
            self._send_pending()
        if outcome.error is not None:
            self._send(encode_event(json_data(outcome.error.to_event_data()), event="error"))
        if outcome.retry_ms is not None:
            self._send(encode_retry(outcome.retry_ms))
        # One past the last update: a client that saw it and reconnects anyway
        # is answered 204, which makes an EventSource stop for good.
        self._send(encode_event(json_data(outcome.end_data()), event="end",
                                id=event_id(session.id, session.seq + 1)))
        self._close(None, finish=True)

    def fail(self, error: StreamError) -> None:
        """End this client's view of the stream with ``error`` (others unaffected)."""
        if self.closed:
            return
        self._pending.clear()
        self._send(encode_event(json_data(error.to_event_data()), event="error"))
        self._send(encode_event(json_data({"reason": "error"}), event="end"))
        self._close(error, finish=True)
        if error.code == "slow_client":
            # The client is not reading, so what we just wrote may never
            # drain: drop the connection and the buffered bytes with it.
            self._writer.abort_connection()

    def disconnect(self) -> None:
        """The client went away (or a write failed)."""
        self._close(None, finish=False)

    def _close(self, error: StreamError | None, finish: bool) -> None:
        if self.closed:
            return
        self.error = error
        if finish:
            # The connection may already be gone; finishing is best effort.
            with contextlib.suppress(StreamClosedError, RuntimeError):
                self.finished = self._writer.finish()
        self.closed = True
        if self._hb_timer is not None:
            self._hb_timer.cancel()
        if not self.done.done():
            self.done.set_result(None)
        if self._on_close is not None:
            self._on_close(self, error)
