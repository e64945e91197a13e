"""Relay: one upstream transfer feeding one :class:`StreamSession`.

Data flows one way: upstream bytes -> :class:`SSEParser` -> :class:`CompletionDecoder`
-> ``session.push``. Cancellation flows back: a session nobody listens to any more
aborts its upstream transfer -- at once, or after a grace window in which a
reconnecting client may resume it. Stop requests cancel at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .completions import CompletionDecoder, end_reason_for
from .config import Settings
from .errors import Overloaded, ShuttingDown, StreamError
from .resume import EventRef, NotStreamOwner, may_access
from .session import Listener, Outcome, StreamSession
from .sse import SSEBufferOverflow, SSEParser
from .store import StopResult, StreamStore, make_store
from .timer_wheel import Timer, TimerWheel
from .upstream import UpstreamClient, UpstreamTransfer

log = logging.getLogger("tornado_sse.relay")

# Why an upstream transfer was cut short, for metrics and the access log.
# "stop" is an explicit Stop request; "error" a protocol or in-band error.
ABORT_CAUSES = ("disconnect", "stop", "timeout", "slow_client", "error", "shutdown")
_TIMEOUT_CODES = frozenset({"upstream_timeout", "upstream_idle", "upstream_total"})


class RelayedStream:
    """Implements :class:`~tornado_sse.upstream.UpstreamSink` for one session."""

    def __init__(self, relay: Relay, session: StreamSession) -> None:
        self.relay = relay
        self.session = session
        self.parser = SSEParser(max_buffer=relay.settings.max_event_bytes)
        self.decoder = CompletionDecoder()
        self.transfer: UpstreamTransfer | None = None
        now = relay.wheel.clock()
        self.started_at = now
        self.last_chunk_at = now
        self.first_token_at: float | None = None
        self.ended_at: float | None = None
        self.watchdog: Timer | None = None
        self.grace: Timer | None = None
        # Optional: every decoded upstream chunk object, in order (the /v1
        # face re-encodes chunks; the /ai face needs only the text deltas).
        self.on_chunk: Callable[[dict[str, Any]], None] | None = None
        # Set when this stream aborted a live upstream transfer (see ABORT_CAUSES).
        self.abort_cause: str | None = None
        # Who asked and through which endpoint, for the access log; filled by
        # whoever opened the stream (e.g. {"client": ..., "path": ...}).
        self.info: dict[str, str] = {}

    # -- UpstreamSink ----------------------------------------------------------

    def on_data(self, chunk: bytes) -> None:
        if self.session.ended:
            return
        self.last_chunk_at = self.relay.wheel.clock()
        # Every delta in this read goes to the session in one push, so a
        # client that keeps up gets them in one write (one syscall), not one
        # per delta; they stay separate events with their own ids.
        contents: list[str] = []
        error: StreamError | None = None
        try:
            for event in self.parser.feed(chunk):
                seen = self.decoder.chunks
                content = self.decoder.feed(event.data)
                if self.on_chunk is not None and self.decoder.chunks != seen:
                    assert self.decoder.last_chunk is not None
                    self._push(contents)  # keep order with what on_chunk emits
                    self.on_chunk(self.decoder.last_chunk)
                    if self.session.ended:  # the listener gave up (slow client)
                        return
                if self.first_token_at is None and self.decoder.answering:
                    self.first_token_at = self.last_chunk_at
                    # The idle limit now applies and may be sooner than
                    # the first-token deadline the watchdog sleeps on.
                    self.rearm_watchdog()
                if content is not None:
                    contents.append(content)
        except SSEBufferOverflow as exc:
            error = StreamError("upstream_protocol", f"event over {exc.limit} bytes")
        except StreamError as exc:
            error = exc
        self._push(contents)
        if error is not None:
            self.fail(error)
            return
        if self.decoder.done:
            # [DONE]: end now; the transfer may finish in the background and
            # its connection be reused by libcurl.
            self.finish(Outcome(end_reason_for(self.decoder.finish_reason), usage=self.decoder.usage))

    def _push(self, contents: list[str]) -> None:
        if len(contents) == 1:
            self.session.push(contents[0])
        elif contents:
            self.session.push_many(contents)
        contents.clear()

    def on_done(self, error: StreamError | None) -> None:
        if self.session.ended:
            return
        if error is None:
            self.parser.close()  # an unterminated last event is discarded, per spec
            if self.decoder.complete:
                self.finish(Outcome(end_reason_for(self.decoder.finish_reason),
                                    usage=self.decoder.usage))
                return
            error = StreamError("upstream_disconnected", "upstream closed before [DONE]")
        self.fail(error, abort=False)

    # -- ending ----------------------------------------------------------------

    def fail(self, error: StreamError, abort: bool = True) -> None:
        log.warning("stream %s upstream error %s: %s", self.session.id, error.code, error.detail)
        if abort:
            self.abort("timeout" if error.code in _TIMEOUT_CODES else "error")
        self.finish(Outcome("error", error=error))

    def cancel(self, reason: str = "cancelled", cause: str = "disconnect",
               retry_ms: int | None = None) -> None:
        """Stop the answer on purpose (client gone, Stop, shutdown).

        ``cause`` says why, for metrics; ``retry_ms`` is a reconnection hint
        sent to listeners just before their ``end``.
        """
        self.abort(cause)
        self.finish(Outcome(reason, retry_ms=retry_ms))

    def abort(self, cause: str = "error") -> None:
        transfer = self.transfer
        if transfer is not None and not (transfer.finished or transfer.aborted):
            self.abort_cause = cause
            transfer.abort()

    def finish(self, outcome: Outcome) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        if not self.session.ended:
            self.ended_at = self.relay.wheel.clock()
            self.session.end(outcome)
            self.relay._stream_ended(self)

    # -- grace window: nobody listens, but someone may reconnect -----------------

    def start_grace(self, window: float) -> None:
        if self.grace is not None:
            # Only the latest departure counts: an earlier timer would cut the
            # window of a client that came back and left again short.
            self.grace.cancel()
        self.grace = self.relay.wheel.call_later(window, self._grace_over)

    def _grace_over(self) -> None:
        self.grace = None
        if self.session.ended or self.session.listeners:
            return
        check = asyncio.ensure_future(self.relay.store.listened_elsewhere(self.session.id))
        check.add_done_callback(self._grace_checked)

    def _grace_checked(self, check: asyncio.Future[bool]) -> None:
        if self.session.ended or self.session.listeners or self.grace is not None:
            return
        elsewhere = False
        if not check.cancelled():
            if check.exception() is not None:
                log.warning("stream %s: cannot ask the store about other listeners: %r",
                            self.session.id, check.exception())
            else:
                elsewhere = check.result()
        if elsewhere:
            self.start_grace(self.relay.settings.resume_window)
            return
        log.info("stream %s: no reconnect within %gs, aborting the upstream",
                 self.session.id, self.relay.settings.resume_window)
        self.cancel("cancelled", cause="disconnect")

    # -- timeouts (one wheel timer per stream, re-armed lazily) ----------------

    def rearm_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.arm_watchdog()

    def arm_watchdog(self) -> None:
        if self.session.ended:
            return
        deadline = self._next_deadline()
        if deadline is not None:
            self.watchdog = self.relay.wheel.call_at(deadline, self._check_deadlines)

    def _deadlines(self) -> list[tuple[float, str]]:
        s = self.relay.settings
        out: list[tuple[float, str]] = []
        if s.total_timeout:
            out.append((self.started_at + s.total_timeout, "upstream_total"))
        if self.first_token_at is None and s.first_token_timeout:
            out.append((self.started_at + s.first_token_timeout, "upstream_timeout"))
        if s.idle_timeout and (self.first_token_at is not None or not s.first_token_timeout):
            out.append((self.last_chunk_at + s.idle_timeout, "upstream_idle"))
        return out

    def _next_deadline(self) -> float | None:
        deadlines = self._deadlines()
        return min(d for d, _ in deadlines) if deadlines else None

    def _check_deadlines(self) -> None:
        if self.session.ended:
            return
        now = self.relay.wheel.clock()
        for deadline, code in sorted(self._deadlines()):
            if now >= deadline:
                self.fail(StreamError(code, f"no progress for {now - self.started_at:.1f}s"))
                return
        self.arm_watchdog()


@dataclass
class Resumption:
    """A stream found for a resume request, and the deltas the client missed."""

    session: StreamSession
    missed: list[tuple[int, str]]


class Relay:
    """Owns the upstream client, the timer wheel, the store and the live streams."""

    def __init__(self, settings: Settings, upstream_url: str, wheel: TimerWheel | None = None,
                 store: StreamStore | None = None) -> None:
        self.settings = settings
        self.wheel = wheel or TimerWheel()
        self.store = store if store is not None else make_store(settings)
        self.upstream = UpstreamClient(
            upstream_url, settings.api_key,
            # Room for every stream we admit: never tornado's default of 10,
            # never a silent queue behind it.
            max_clients=settings.max_streams + 16,
            connect_timeout=settings.connect_timeout,
        )
        self.streams: dict[str, RelayedStream] = {}
        # Observation points for metrics and logs, kept off the per-delta path:
        # each runs once per stream (open, end) or once per departing listener.
        self.on_stream_open: list[Callable[[RelayedStream], None]] = []
        self.on_stream_end: list[Callable[[RelayedStream], None]] = []
        self.on_listener_left: list[Callable[[RelayedStream, Listener], None]] = []
        # False while shutting down: new streams are refused with 503.
        self.accepting = True

    def start(self) -> None:
        self.wheel.start()
        self.store.start(self.cancel_local)

    def close(self) -> None:
        self.accepting = False
        for stream in list(self.streams.values()):
            stream.cancel("shutdown", cause="shutdown")
        self.wheel.stop()
        self.upstream.close()

    @property
    def active(self) -> int:
        return len(self.streams)

    def upstream_body(self, messages: list[dict[str, Any]], model: str | None,
                      temperature: float | None, extra: dict[str, Any] | None = None) -> bytes:
        body: dict[str, Any] = {
            "model": model or self.settings.model,
            "messages": messages,
            "stream": True,
        }
        if temperature is not None:
            body["temperature"] = temperature
        if self.settings.upstream_usage:
            body["stream_options"] = {"include_usage": True}
        if extra:
            body.update(extra)
        return json.dumps(body, ensure_ascii=False).encode()

    def open(self, body: bytes, *, owner: str | None = None) -> RelayedStream:
        """Start a stream now or raise :class:`Overloaded` (or :class:`ShuttingDown`) at
        once. ``owner`` (a non-secret client identity) is who may later resume or stop it."""
        if not self.accepting:
            raise ShuttingDown()
        if len(self.streams) >= self.settings.max_streams:
            raise Overloaded(self.settings.max_streams)
        session = self.store.create(owner)
        stream = RelayedStream(self, session)
        self.streams[session.id] = stream
        try:
            stream.transfer = self.upstream.open(body, stream)
        except StreamError:
            del self.streams[session.id]
            self.store.discard(session)
            raise Overloaded(self.settings.max_streams) from None
        stream.arm_watchdog()
        for callback in self.on_stream_open:
            callback(stream)
        return stream

    def listener_left(self, stream: RelayedStream, listener: Listener,
                      error: StreamError | None = None, *, grace: bool = True) -> None:
        """A client went away: with nobody left, stop paying for the answer --
        after the resume window if the client may come back (``grace``), else now.

        ``error`` is why the listener was cut off, if it was (``slow_client``):
        such a client is not coming back for more.
        """
        stream.session.detach(listener)
        for callback in self.on_listener_left:
            callback(stream, listener)
        if stream.session.listeners or stream.session.ended:
            return
        if error is not None and error.code == "slow_client":
            stream.abort("slow_client")
            stream.finish(Outcome("error", error=error))
        elif grace and self.settings.resume_window > 0:
            stream.start_grace(self.settings.resume_window)
        else:
            stream.cancel("cancelled", cause="disconnect")

    def release(self, session: StreamSession, listener: Listener,
                error: StreamError | None = None) -> None:
        """Like :meth:`listener_left`, for any session a listener was attached to
        (one relayed here, a finished one, or a mirror of one relayed elsewhere)."""
        stream = self.streams.get(session.id)
        if stream is not None and stream.session is session:
            self.listener_left(stream, listener, error)
        else:
            session.detach(listener)

    # -- resume and stop ------------------------------------------------------------

    async def resume(self, ref: EventRef, requester: str | None = None) -> Resumption | None:
        """The stream and missed deltas for a client that last saw ``ref``; ``None``
        if there is nothing to resume (unknown, expired, or past its end)."""
        session = await self.store.find(ref.stream_id)
        if session is None:
            return None
        if not may_access(session.owner, requester):
            raise NotStreamOwner()
        missed = session.replay_from(ref.seq)
        if missed is None:
            log.info("stream %s: cannot resume after %d, the buffer starts at %d",
                     session.id, ref.seq, session.first_kept_seq)
            return None
        if session.ended and ref.seq > session.seq:
            return None  # the client saw the end already
        return Resumption(session, missed)

    async def stop(self, stream_id: str, requester: str | None = None) -> StopResult:
        """Abort the upstream now; every listener gets ``end`` with ``cancelled``."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return await self.store.stop_elsewhere(stream_id, requester)
        if not may_access(stream.session.owner, requester):
            return StopResult("forbidden")
        stream.cancel("cancelled", cause="stop")
        return StopResult("stopped")

    def cancel_local(self, stream_id: str) -> None:
        """A Stop for a stream of ours that reached another process."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            log.info("stream %s: stopped from another process", stream_id)
            stream.cancel("cancelled", cause="stop")

    def _stream_ended(self, stream: RelayedStream) -> None:
        self.streams.pop(stream.session.id, None)
        self.store.ended(stream.session)
        for callback in self.on_stream_end:
            callback(stream)
