"""The in-process stream store: live sessions, and finished ones kept for ``ttl`` seconds.

Bounded three ways: each session's replay log by ``buffer_bytes``; all logs together
by ``max_bytes`` (finished streams are forgotten oldest first, then the pushing
stream trims its own log); finished streams by ``ttl``. Finished streams are kept in
the order they ended, so expiry and eviction only ever look at the front.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from tornado.ioloop import PeriodicCallback

from .resume import may_access
from .session import LogBudget, StreamSession
from .store import StopResult


class MemoryStore:
    def __init__(self, *, buffer_bytes: int = 256 * 1024, ttl: float = 60.0,
                 max_bytes: int = 128 << 20, clock: Callable[[], float] = time.monotonic) -> None:
        self.buffer_bytes = buffer_bytes
        self.ttl = ttl
        self.clock = clock
        self.budget = LogBudget(max_bytes, self._reclaim)
        self.live: dict[str, StreamSession] = {}
        self.finished: OrderedDict[str, tuple[float, StreamSession]] = OrderedDict()
        self._sweeper: PeriodicCallback | None = None

    # -- StreamStore -----------------------------------------------------------

    def start(self, stop_local: Callable[[str], None]) -> None:
        # Lookups sweep too; this only returns memory of an idle server.
        if self._sweeper is None:
            self._sweeper = PeriodicCallback(self.sweep, 1000)
            self._sweeper.start()

    async def wait_ready(self) -> None:
        return None

    def create(self, owner: str | None = None) -> StreamSession:
        session = StreamSession(buffer_bytes=self.buffer_bytes, budget=self.budget, owner=owner)
        self.live[session.id] = session
        return session

    def discard(self, session: StreamSession) -> None:
        self.live.pop(session.id, None)
        session.release_log()

    def ended(self, session: StreamSession) -> None:
        if self.live.pop(session.id, None) is None:
            return
        if self.ttl <= 0:
            session.release_log()
            return
        self.finished[session.id] = (self.clock() + self.ttl, session)
        self.sweep()

    async def find(self, stream_id: str) -> StreamSession | None:
        return self.get(stream_id)

    async def stop_elsewhere(self, stream_id: str, requester: str | None) -> StopResult:
        session = self.get(stream_id)
        if session is None:
            return StopResult("unknown")
        if not may_access(session.owner, requester):
            return StopResult("forbidden")
        # Live streams are the relay's to stop; here only finished ones remain.
        return StopResult("ended", session.outcome.reason if session.outcome else None)

    async def listened_elsewhere(self, stream_id: str) -> bool:
        return False  # there is no elsewhere

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None

    # -- local lookups and housekeeping ------------------------------------------

    def get(self, stream_id: str) -> StreamSession | None:
        """A live or (unexpired) finished session of this process."""
        session = self.live.get(stream_id)
        if session is not None:
            return session
        self.sweep()
        item = self.finished.get(stream_id)
        return item[1] if item is not None else None

    def sweep(self) -> None:
        now = self.clock()
        while self.finished:
            expires, _ = next(iter(self.finished.values()))
            if expires > now:
                break
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _, (_, session) = self.finished.popitem(last=False)
        session.release_log()

    def _reclaim(self) -> None:
        while self.budget.used > self.budget.limit and self.finished:
            self._forget_oldest()
