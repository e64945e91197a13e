"""A stream's state, shared by whoever listens to it. No I/O.

A :class:`StreamSession` numbers the text deltas of one answer, keeps them (within
a byte budget) for listeners that attach late or reconnect, and tells every
listener about each delta and about the end. Where the deltas come from (the
relay) and where they go (client channels) are not its business.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import StreamError


def new_stream_id() -> str:
    """128 random bits, URL-safe: unguessable, so an id is a capability."""
    return secrets.token_urlsafe(16)


class Listener(Protocol):
    def on_update(self, session: StreamSession, seq: int, content: str) -> None: ...

    def on_end(self, session: StreamSession) -> None: ...


class Recorder(Protocol):
    """Sees every delta of a session as it is pushed (e.g. to mirror it to Redis).

    Unlike a listener it does not keep the stream alive, and it must not block:
    it is called on the hot path, once per delta.
    """

    def record_update(self, session: StreamSession, seq: int, content: str) -> None: ...


class LogBudget:
    """Replay-log bytes held by all the sessions of one store, against a cap.

    When a push takes the total over ``limit``, ``reclaim`` is asked to free room
    (a store forgets finished streams first); if that is not enough, the pushing
    session trims its own log. Memory stays bounded however many streams run.
    """

    __slots__ = ("limit", "reclaim", "used")

    def __init__(self, limit: int, reclaim: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.reclaim = reclaim


@dataclass
class Outcome:
    """How a stream ended. ``reason`` is one of the contract's end reasons."""

    reason: str
    error: StreamError | None = None
    usage: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # A reconnection delay to send (as ``retry:``) before the ``end`` event,
    # e.g. on shutdown so clients come back after the restart, spread out.
    retry_ms: int | None = None

    def end_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"reason": self.reason}
        if self.usage is not None:
            data["usage"] = self.usage
        return data


class StreamSession:
    """``buffer_bytes`` bounds the replay log (UTF-8 bytes of text). ``seq`` is the
    number of the delta before the first one this session will see (non-zero for a
    mirror of a stream whose beginning was already trimmed). ``owner`` identifies
    who may resume or stop it (see :func:`tornado_sse.resume.may_access`)."""

    def __init__(self, stream_id: str | None = None, *, buffer_bytes: int = 256 * 1024,
                 budget: LogBudget | None = None, owner: str | None = None, seq: int = 0) -> None:
        self.id = stream_id or new_stream_id()
        self.seq = seq
        self.owner = owner
        self.outcome: Outcome | None = None
        self.listeners: list[Listener] = []
        self.recorder: Recorder | None = None
        self.content_bytes = 0
        self._log: deque[tuple[int, str, int]] = deque()  # (seq, text, UTF-8 size)
        self._log_bytes = 0
        self._buffer_bytes = buffer_bytes
        self._budget = budget

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    # -- producer side -------------------------------------------------------

    def push(self, content: str) -> None:
        if self.outcome is not None:
            return
        seq = self._record(content)
        for listener in list(self.listeners):
            listener.on_update(self, seq, content)

    def push_many(self, contents: list[str]) -> None:
        """Deltas that arrived together. A listener with ``on_updates(session,
        first_seq, contents)`` gets them in one call (one write to its client
        instead of one per delta); others get ``on_update`` for each."""
        if self.outcome is not None or not contents:
            return
        first = self.seq + 1
        for content in contents:
            self._record(content)
        for listener in list(self.listeners):
            on_updates = getattr(listener, "on_updates", None)
            if on_updates is not None:
                on_updates(self, first, contents)
            else:
                for i, content in enumerate(contents):
                    listener.on_update(self, first + i, content)

    def _record(self, content: str) -> int:
        """Number and keep one delta; return its sequence number."""
        seq = self.seq = self.seq + 1
        self.content_bytes += len(content)
        # isascii() is O(1): the usual delta needs no encoding to be measured.
        size = len(content) if content.isascii() else len(content.encode())
        self._log.append((seq, content, size))
        self._log_bytes += size
        budget = self._budget
        if budget is not None:
            budget.used += size
            if budget.used > budget.limit:
                self._trim(budget)
        if self._log_bytes > self._buffer_bytes:
            self._trim(None)
        if self.recorder is not None:
            self.recorder.record_update(self, seq, content)
        return seq

    def end(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        for listener in list(self.listeners):
            listener.on_end(self)

    def _trim(self, budget: LogBudget | None) -> None:
        """Drop the oldest deltas past this log's bound, or past the global one
        once the store has freed what it could. The newest delta always stays."""
        if budget is None:
            while self._log_bytes > self._buffer_bytes and len(self._log) > 1:
                self._drop_oldest()
            return
        if budget.reclaim is not None:
            budget.reclaim()
        while budget.used > budget.limit and len(self._log) > 1:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        size = self._log.popleft()[2]
        self._log_bytes -= size
        if self._budget is not None:
            self._budget.used -= size

    def release_log(self) -> None:
        """Forget the replay log (the store no longer offers this stream)."""
        if self._budget is not None:
            self._budget.used -= self._log_bytes
        self._log.clear()
        self._log_bytes = 0

    @property
    def log_bytes(self) -> int:
        return self._log_bytes

    @property
    def first_kept_seq(self) -> int:
        """The oldest delta a listener can still be given (``seq + 1`` if none)."""
        return self._log[0][0] if self._log else self.seq + 1

    # -- consumer side -------------------------------------------------------

    def replay_from(self, after_seq: int) -> list[tuple[int, str]] | None:
        """Deltas after ``after_seq``, or ``None`` if some were already dropped."""
        if after_seq >= self.seq:
            return []
        if not self._log or self._log[0][0] > after_seq + 1:
            return None
        return [(seq, text) for seq, text, _ in self._log if seq > after_seq]

    def attach(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def detach(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
