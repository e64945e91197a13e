"""Fixtures of the e2e tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .run_py import Proc


@pytest.fixture
def procs() -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def start(*args: str, listening: int = 1) -> Proc:
        p = Proc(*args, listening=listening)
        started.append(p)
        return p

    yield start
    codes = [p.stop() for p in started]
    assert codes == [0] * len(started), "".join(line for p in started for line in p.lines)
