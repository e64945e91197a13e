"""Per-client limits with a fake clock. Pure."""

from __future__ import annotations

import pytest

from tornado_sse.auth import Principal
from tornado_sse.limits import LimitExceeded, TokenLimiter

ALICE, BOB = Principal("alice"), Principal("bob")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_off_by_default() -> None:
    limiter = TokenLimiter()
    for _ in range(1000):
        limiter.acquire(ALICE)
    assert limiter.streams(ALICE) == 1000


def test_concurrent_streams_per_client() -> None:
    limiter = TokenLimiter(max_streams=2)
    limiter.acquire(ALICE)
    limiter.acquire(ALICE)
    with pytest.raises(LimitExceeded) as info:
        limiter.acquire(ALICE)
    assert (info.value.status, info.value.code, info.value.retry_after) == (429, "too_many_streams", 1)
    limiter.acquire(BOB)  # others unaffected
    limiter.release(ALICE)
    limiter.acquire(ALICE)
    assert limiter.streams(ALICE) == 2


def test_release_never_goes_negative() -> None:
    limiter = TokenLimiter(max_streams=1)
    limiter.release(ALICE)
    limiter.acquire(ALICE)
    limiter.release(ALICE)
    limiter.release(ALICE)
    assert limiter.streams(ALICE) == 0


def test_requests_per_minute_burst_then_refill_with_retry_after() -> None:
    clock = Clock()
    limiter = TokenLimiter(per_minute=6, clock=clock)  # one every 10 s
    for _ in range(6):
        limiter.acquire(ALICE)
        limiter.release(ALICE)
    with pytest.raises(LimitExceeded) as info:
        limiter.acquire(ALICE)
    assert info.value.code == "rate_limited" and info.value.retry_after == 10
    clock.now += 4
    with pytest.raises(LimitExceeded) as info:
        limiter.acquire(ALICE)
    assert info.value.retry_after == 6
    limiter.acquire(BOB)
    clock.now += 6
    limiter.acquire(ALICE)
    with pytest.raises(LimitExceeded):
        limiter.acquire(ALICE)
    clock.now += 3600  # a long pause refills only up to the burst
    for _ in range(6):
        limiter.acquire(ALICE)
    with pytest.raises(LimitExceeded):
        limiter.acquire(ALICE)


def test_refused_request_costs_nothing() -> None:
    clock = Clock()
    limiter = TokenLimiter(max_streams=1, per_minute=2, clock=clock)
    limiter.acquire(ALICE)
    with pytest.raises(LimitExceeded) as info:
        limiter.acquire(ALICE)  # stream limit: the rate allowance is not charged
    assert info.value.code == "too_many_streams"
    limiter.release(ALICE)
    limiter.acquire(ALICE)
    assert limiter.streams(ALICE) == 1
