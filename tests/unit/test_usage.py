"""Usage book. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from tornado_sse.auth import Principal
from tornado_sse.usage import UsageBook, clean_usage

ALICE, BOB = Principal("alice"), Principal("bob")


def test_records_per_client() -> None:
    book = UsageBook()
    book.record(ALICE, {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                        "completion_tokens_details": {"reasoning_tokens": 0}})
    book.record(ALICE, {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    book.record(ALICE, None)  # e.g. cancelled before the usage chunk
    book.record(BOB, {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7})
    a = book.report(ALICE)
    assert a["client"] == "alice" and a["object"] == "usage"
    assert (a["requests"], a["requests_with_usage"]) == (3, 2)
    assert (a["prompt_tokens"], a["completion_tokens"], a["total_tokens"]) == (11, 7, 18)
    assert book.report(BOB)["total_tokens"] == 7
    assert book.report(Principal("carol"))["requests"] == 0


@pytest.mark.parametrize("usage,expected", [
    ({"prompt_tokens": 3, "completion_tokens": 4}, {"prompt_tokens": 3, "completion_tokens": 4,
                                                     "total_tokens": 7}),
    ({"prompt_tokens": -1, "completion_tokens": "4", "total_tokens": True}, None),
    ({"prompt_tokens": 1.5}, None),
    ("12", None),
    ([], None),
    ({}, None),
])
def test_untrusted_upstream_values(usage: Any, expected: Any) -> None:
    assert clean_usage(usage) == expected
