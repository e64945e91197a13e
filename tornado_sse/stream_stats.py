"""What a finished stream and a departed listener report, for metrics and logs.

Both the metrics and the access log read the same few numbers once per stream
(at its end) and once per listener (when it leaves); this module computes them
in one place so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .relay import RelayedStream


@runtime_checkable
class DeliveryStats(Protocol):
    """Counters of one client connection (a :class:`~tornado_sse.channel.ClientChannel`
    has them; so does anything else that writes a stream to a client)."""

    bytes_sent: int
    heartbeats: int
    merged: int


@dataclass(frozen=True)
class StreamSummary:
    id: str
    reason: str  # the end reason sent to clients
    code: str  # the error code, "" when the stream did not end in error
    duration: float  # seconds, from upstream request to end
    ttft: float | None  # seconds to the first token, None without one
    deltas: int
    upstream_bytes: int
    abort_cause: str | None


def summarize(stream: RelayedStream) -> StreamSummary:
    """The numbers of an ended stream (call from an ``on_stream_end`` hook)."""
    outcome = stream.session.outcome
    ended = stream.ended_at if stream.ended_at is not None else stream.relay.wheel.clock()
    return StreamSummary(
        id=stream.session.id,
        reason=outcome.reason if outcome is not None else "",
        code=outcome.error.code if outcome is not None and outcome.error is not None else "",
        duration=max(0.0, ended - stream.started_at),
        ttft=None if stream.first_token_at is None else stream.first_token_at - stream.started_at,
        deltas=stream.session.seq,
        upstream_bytes=stream.transfer.bytes_received if stream.transfer is not None else 0,
        abort_cause=stream.abort_cause,
    )
