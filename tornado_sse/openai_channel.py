"""Listeners that give a stream OpenAI's face: chunk-by-chunk SSE, or one JSON answer.

Both take the upstream's chunk objects from :attr:`RelayedStream.on_chunk`
(the session's text deltas are the ``/ai`` face and are ignored here) and the
stream's end from the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .channel import ClientChannel, ResponseWriter
from .errors import StreamError
from .openai_response import (
    DONE,
    ChunkAggregator,
    client_chunk,
    encode_chunk,
    shutdown_body,
    stream_error_body,
    stream_error_status,
)
from .session import Outcome, StreamSession
from .timer_wheel import TimerWheel

# (HTTP status, OpenAI error body) for an error the client can still get as a status.
EarlyError = Callable[[int, dict[str, Any]], None]


def outcome_error(outcome: Outcome) -> tuple[int, dict[str, Any]] | None:
    """The error a ``/v1`` client must hear about for this end, if any."""
    if outcome.error is not None:
        return stream_error_status(outcome.error), stream_error_body(outcome.error)
    if outcome.reason == "shutdown":
        return 503, shutdown_body()
    return None


class ChunkChannel(ClientChannel):
    """Streams one ``/v1`` response: each chunk as ``data: {...}``, then ``data: [DONE]``.

    Nothing is written before the first chunk (or heartbeat): until then an
    error is still answered with an HTTP status through ``on_early_error``, which
    SDKs turn into typed exceptions; after it, errors go in-band as a
    ``data: {"error": ...}`` event (which the openai SDK raises as ``APIError``)
    and no ``[DONE]`` follows. Chunks are never merged: a client that falls
    ``max_buffer`` bytes behind is cut off with ``slow_client``.
    """

    def __init__(self, writer: ResponseWriter, wheel: TimerWheel, *, include_usage: bool,
                 on_early_error: EarlyError, **kwargs: Any) -> None:
        super().__init__(writer, wheel, **kwargs)
        self.include_usage = include_usage
        self._on_early_error = on_early_error
        self.chunks_sent = 0

    @property
    def committed(self) -> bool:
        """True once a byte (and so the 200 status line) went out."""
        return self.bytes_sent > 0

    def on_update(self, session: StreamSession, seq: int, content: str) -> None:
        pass  # the text is in the chunks

    def on_chunk(self, chunk: dict[str, Any]) -> None:
        if self.closed:
            return
        out = client_chunk(chunk, self.include_usage)
        if out is None:
            return
        data = encode_chunk(out)
        if self.inflight + len(data) > self._max_buffer:
            self.fail(StreamError("slow_client", f"{self.inflight + len(data)} bytes unsent"))
            return
        self.chunks_sent += 1
        self._send(data)

    def on_end(self, session: StreamSession) -> None:
        outcome = session.outcome
        assert outcome is not None
        if self.closed:
            return
        problem = outcome_error(outcome)
        if problem is None:
            self._send(DONE)
            self._close(None, finish=True)
        else:
            self._end_with_error(*problem, error=outcome.error)

    def fail(self, error: StreamError) -> None:
        if self.closed:
            return
        self._end_with_error(stream_error_status(error), stream_error_body(error), error=error)
        if error.code == "slow_client":
            self._writer.abort_connection()

    def _end_with_error(self, status: int, body: dict[str, Any], error: StreamError | None) -> None:
        if not self.committed:
            self._on_early_error(status, body)
            self._close(error, finish=False)
            return
        self._send(encode_chunk(body))
        self._close(error, finish=True)


class CompletionCollector:
    """Collects a stream for a non-streaming ``/v1`` call; ``on_done`` gets the
    session when it ends, and :meth:`response` the answer to send."""

    def __init__(self, on_done: Callable[[StreamSession], None]) -> None:
        self.aggregator = ChunkAggregator()
        self._on_done = on_done

    def on_chunk(self, chunk: dict[str, Any]) -> None:
        self.aggregator.add(chunk)

    def on_update(self, session: StreamSession, seq: int, content: str) -> None:
        pass

    def on_end(self, session: StreamSession) -> None:
        self._on_done(session)

    def response(self, outcome: Outcome) -> tuple[int, dict[str, Any]]:
        problem = outcome_error(outcome)
        if problem is not None:
            return problem
        return 200, self.aggregator.result()
