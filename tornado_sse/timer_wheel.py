"""One coarse timer for thousands of deadlines.

A Tornado timeout per stream per heartbeat would put thousands of entries in the
IOLoop's heap and churn them on every write. Instead, deadlines are dropped into
buckets of ``resolution`` seconds and one periodic callback fires whole buckets.
Callers re-check their own state when fired (a heartbeat timer asks "has anything
been written since?"), so moving a deadline later never costs a wheel operation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from tornado.ioloop import PeriodicCallback


class Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class TimerWheel:
    def __init__(self, resolution: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.resolution = resolution
        self.clock = clock
        self._buckets: dict[int, list[Timer]] = {}
        self._last_tick = self._tick_of(clock())
        self._periodic: PeriodicCallback | None = None

    def _tick_of(self, when: float) -> int:
        return math.ceil(when / self.resolution)

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def start(self) -> None:
        """Start firing from the current IOLoop."""
        if self._periodic is None:
            self._periodic = PeriodicCallback(self.advance, self.resolution * 1000)
            self._periodic.start()

    def stop(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        tick = max(self._tick_of(when), self._last_tick + 1)
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [timer]
        else:
            bucket.append(timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.clock() + delay, callback)

    def advance(self) -> None:
        """Fire every timer whose bucket is due (public for tests)."""
        now_tick = self._tick_of(self.clock())
        if now_tick <= self._last_tick:
            return
        if now_tick - self._last_tick > len(self._buckets):
            due_ticks = sorted(t for t in self._buckets if t <= now_tick)
        else:
            due_ticks = [t for t in range(self._last_tick + 1, now_tick + 1) if t in self._buckets]
        self._last_tick = now_tick
        for tick in due_ticks:
            for timer in self._buckets.pop(tick):
                if not timer.cancelled:
                    timer.cancelled = True  # fired timers are spent
                    timer.callback()
