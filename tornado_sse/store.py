"""Where streams live between requests: the interface, and picking an implementation.

A store knows the streams this process relays, keeps finished ones for a while so a
late reconnect still gets its remainder and ``end``, and -- when it is shared
(Redis) -- finds streams relayed by other processes and carries Stop requests to
them. The relay produces into sessions the store created; handlers resume from
sessions the store finds. Implementations: :mod:`tornado_sse.memory_store` (one
process, the default) and :mod:`tornado_sse.redis_store` (any number of processes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Literal, Protocol

from .config import Settings
from .session import StreamSession

StopState = Literal["stopped", "stopping", "ended", "unknown", "forbidden"]


@dataclass(frozen=True)
class StopResult:
    """What a Stop request did. ``stopped``: ended here and now; ``stopping``: asked
    the process relaying it; ``ended``: had already ended (``reason`` says how)."""

    state: StopState
    reason: str | None = None


class StoreError(Exception):
    """The store cannot be used (misconfigured, or its server unreachable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamStore(Protocol):
    def start(self, stop_local: Callable[[str], None]) -> None:
        """Begin background work. ``stop_local(stream_id)`` cancels a stream this
        process relays, for Stop requests that reach another process."""

    async def wait_ready(self) -> None:
        """Return once the store works (raises :class:`StoreError` if it cannot)."""

    def create(self, owner: str | None = None) -> StreamSession:
        """A new session for a stream this process is about to relay."""

    def discard(self, session: StreamSession) -> None:
        """Forget a created session whose stream never started."""

    def ended(self, session: StreamSession) -> None:
        """A stream this process relayed has ended: keep it for late reconnects."""

    async def find(self, stream_id: str) -> StreamSession | None:
        """A session to resume: one of ours, or a live mirror of one relayed
        elsewhere. ``None`` if unknown or expired."""

    async def stop_elsewhere(self, stream_id: str, requester: str | None) -> StopResult:
        """Stop a stream this process does not relay (the caller checked that)."""

    async def listened_elsewhere(self, stream_id: str) -> bool:
        """Whether clients of other processes follow this (locally relayed) stream."""

    async def close(self) -> None:
        """Flush what is pending and release connections."""


def make_store(settings: Settings) -> StreamStore:
    from .memory_store import MemoryStore

    local = MemoryStore(buffer_bytes=settings.resume_buffer_bytes, ttl=settings.resume_ttl,
                        max_bytes=settings.resume_max_bytes)
    if settings.redis_url is None:
        return local
    shared: StreamStore = redis_store().RedisStore(
        settings.redis_url, local, prefix=settings.redis_prefix, ttl=settings.resume_ttl)
    return shared


def redis_store() -> ModuleType:
    """The Redis store module, imported only when asked for: redis is an optional extra."""
    try:
        from . import redis_store as module
    except ImportError:
        raise StoreError("--redis-url needs the redis package: pip install 'tornado_sse[redis]'") \
            from None
    return module
