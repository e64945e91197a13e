"""The in-memory store and the session's replay log: bounds, ttl, eviction. No loop."""

from __future__ import annotations

from tornado_sse.errors import StreamError
from tornado_sse.memory_store import MemoryStore
from tornado_sse.session import LogBudget, Outcome, StreamSession


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_replay_from_positions() -> None:
    s = StreamSession()
    for text in ["a", "b", "c"]:
        s.push(text)
    assert s.replay_from(0) == [(1, "a"), (2, "b"), (3, "c")]
    assert s.replay_from(2) == [(3, "c")]
    assert s.replay_from(3) == []
    assert s.replay_from(7) == []  # a position past the end: nothing to send


def test_log_is_bounded_in_utf8_bytes_and_says_when_it_cannot_replay() -> None:
    s = StreamSession(buffer_bytes=10)
    for text in ["你好", "世界", "！"]:  # 6 + 6 + 3 UTF-8 bytes
        s.push(text)
    assert s.log_bytes == 9 and s.first_kept_seq == 2
    assert s.replay_from(1) == [(2, "世界"), (3, "！")]
    assert s.replay_from(0) is None  # seq 1 was dropped


def test_newest_delta_is_kept_even_if_over_budget() -> None:
    s = StreamSession(buffer_bytes=4)
    s.push("x" * 100)
    assert s.replay_from(0) == [(1, "x" * 100)]


def test_mirror_session_starts_mid_stream() -> None:
    s = StreamSession("AbCdEfGhIjKlMnOpQrStUv", seq=4)
    assert s.replay_from(4) == [] and s.replay_from(2) is None
    s.push("e")
    assert s.replay_from(4) == [(5, "e")]
    assert s.replay_from(3) is None


def test_finished_streams_expire_after_ttl() -> None:
    clock = Clock()
    store = MemoryStore(ttl=60, clock=clock)
    s = store.create()
    s.push("hi")
    assert store.get(s.id) is s
    s.end(Outcome("stop"))
    store.ended(s)
    clock.now += 59
    assert store.get(s.id) is s
    clock.now += 2
    assert store.get(s.id) is None
    assert store.budget.used == 0


def test_ttl_zero_forgets_at_once() -> None:
    store = MemoryStore(ttl=0)
    s = store.create()
    s.push("hi")
    s.end(Outcome("stop"))
    store.ended(s)
    assert store.get(s.id) is None and store.budget.used == 0


def test_global_cap_evicts_finished_streams_oldest_first() -> None:
    store = MemoryStore(max_bytes=100, ttl=60)
    done = []
    for _ in range(3):
        s = store.create()
        s.push("x" * 30)
        s.end(Outcome("stop"))
        store.ended(s)
        done.append(s)
    assert store.budget.used == 90
    live = store.create()
    live.push("y" * 30)  # 120 > 100: the oldest finished stream goes
    assert store.get(done[0].id) is None
    assert store.get(done[1].id) is done[1]
    assert store.budget.used == 90


def test_global_cap_trims_live_logs_when_nothing_finished_is_left() -> None:
    store = MemoryStore(max_bytes=50, buffer_bytes=1000)
    a, b = store.create(), store.create()
    for _ in range(4):
        a.push("a" * 10)
    for _ in range(4):
        b.push("b" * 10)
    assert store.budget.used == 50
    # Only the stream that pushed over the cap trimmed; it keeps its newest delta.
    assert a.replay_from(0) == [(i, "a" * 10) for i in range(1, 5)]
    assert b.replay_from(3) == [(4, "b" * 10)]
    assert b.replay_from(2) is None


def test_discard_releases_budget() -> None:
    store = MemoryStore()
    s = store.create()
    s.push("abc")
    store.discard(s)
    assert store.get(s.id) is None and store.budget.used == 0


def test_budget_reclaim_hook_runs_before_self_trim() -> None:
    calls = []
    budget = LogBudget(5, lambda: calls.append(1))
    s = StreamSession(budget=budget)
    s.push("abc")
    s.push("def")
    assert calls == [1]
    assert s.replay_from(1) == [(2, "def")] and budget.used == 3


def test_owner_is_kept_and_error_outcomes_survive() -> None:
    store = MemoryStore()
    s = store.create(owner="alice")
    s.end(Outcome("error", error=StreamError("upstream_idle")))
    store.ended(s)
    found = store.get(s.id)
    assert found is not None and found.owner == "alice"
    assert found.outcome is not None and found.outcome.error is not None
