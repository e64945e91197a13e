"""Per-client limits: concurrent streams and requests per minute. Pure (clock injected).

Requests per minute is a token bucket per client: ``rate`` requests may come at once,
then one more every ``60 / rate`` seconds. Past either limit the request is refused
with 429 and a ``Retry-After`` saying when trying again can succeed (for streams we
cannot know when one ends, so it says one second).

A limit of 0 is off. Without client tokens everyone is the one anonymous client, so
the limits then apply to the server as a whole.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .auth import Principal
from .errors import RequestError


class LimitExceeded(RequestError):
    """429 with ``Retry-After``."""

    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(429, code, message, retry_after=retry_after)


@dataclass
class _State:
    streams: int = 0
    allowance: float = 0.0  # requests the bucket holds right now
    updated: float = 0.0


class TokenLimiter:
    def __init__(self, max_streams: int = 0, per_minute: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_streams = max_streams
        self.per_minute = per_minute
        self._clock = clock
        self._state: dict[str, _State] = {}

    def _get(self, principal: Principal) -> _State:
        state = self._state.get(principal.name)
        if state is None:
            state = self._state[principal.name] = _State(allowance=float(self.per_minute),
                                                          updated=self._clock())
        return state

    def acquire(self, principal: Principal) -> None:
        """Count one request and hold one stream slot, or raise :class:`LimitExceeded`.

        Both limits are checked before either is charged, so a refused request
        costs the client nothing.
        """
        state = self._get(principal)
        if self.per_minute:
            now = self._clock()
            rate = self.per_minute / 60.0
            state.allowance = min(float(self.per_minute),
                                  state.allowance + (now - state.updated) * rate)
            state.updated = now
            if state.allowance < 1.0:
                wait = math.ceil((1.0 - state.allowance) / rate)
                raise LimitExceeded(
                    "rate_limited",
                    f"More than {self.per_minute} requests per minute; retry in {wait} s.",
                    max(1, wait))
        if self.max_streams and state.streams >= self.max_streams:
            raise LimitExceeded(
                "too_many_streams",
                f"This client already has {state.streams} streams open (limit {self.max_streams}).",
                1)
        if self.per_minute:
            state.allowance -= 1.0
        state.streams += 1

    def release(self, principal: Principal) -> None:
        """A stream of ``principal`` ended."""
        state = self._state.get(principal.name)
        if state is not None and state.streams > 0:
            state.streams -= 1

    def streams(self, principal: Principal) -> int:
        state = self._state.get(principal.name)
        return state.streams if state is not None else 0
