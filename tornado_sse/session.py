"""A stream's state, shared by whoever listens to it. No I/O.

A :class:`StreamSession` numbers the text deltas of one answer, keeps them (within
a byte budget) for listeners that attach late or reconnect, and tells every
listener about each delta and about the end. Where the deltas come from (the
relay) and where they go (client channels) are not its business.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import StreamError


def new_stream_id() -> str:
    """128 random bits, URL-safe: unguessable, so an id is a capability."""
    return secrets.token_urlsafe(16)


class Listener(Protocol):
    def on_update(self, session: StreamSession, seq: int, content: str) -> None: ...

    def on_end(self, session: StreamSession) -> None: ...


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
    def __init__(self, stream_id: str | None = None, *, buffer_bytes: int = 256 * 1024) -> None:
        self.id = stream_id or new_stream_id()
        self.seq = 0
        self.outcome: Outcome | None = None
        self.listeners: list[Listener] = []
        self.content_bytes = 0
        self._log: deque[tuple[int, str]] = deque()
        self._log_bytes = 0
        self._buffer_bytes = buffer_bytes

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    # -- producer side -------------------------------------------------------

    def push(self, content: str) -> None:
        if self.outcome is not None:
            return
        self._record(content)
        for listener in list(self.listeners):
            listener.on_update(self, self.seq, content)

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

    def _record(self, content: str) -> None:
        self.seq += 1
        size = len(content)
        self.content_bytes += size
        self._log.append((self.seq, content))
        self._log_bytes += size
        # Keep at least the newest delta; drop the oldest past the budget.
        while self._log_bytes > self._buffer_bytes and len(self._log) > 1:
            self._log_bytes -= len(self._log.popleft()[1])

    def end(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        for listener in list(self.listeners):
            listener.on_end(self)

    # -- consumer side -------------------------------------------------------

    def replay_from(self, after_seq: int) -> list[tuple[int, str]] | None:
        """Deltas after ``after_seq``, or ``None`` if some were already dropped."""
        if after_seq >= self.seq:
            return []
        if not self._log or self._log[0][0] > after_seq + 1:
            return None
        return [item for item in self._log if item[0] > after_seq]

    def attach(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def detach(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
