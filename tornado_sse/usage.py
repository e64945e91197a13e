"""Token usage per client, in memory. Pure.

The upstream reports usage in the last chunk of a stream when asked
(``stream_options.include_usage``). A stream that ends before that chunk
(client gone, error, an upstream that ignores the option) is counted as a
request without usage, so the report says how much of the traffic it covers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .auth import Principal

_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass
class Usage:
    requests: int = 0
    requests_with_usage: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    since: int = field(default_factory=lambda: int(time.time()))


def clean_usage(usage: Any) -> dict[str, int] | None:
    """The three counts from an upstream ``usage`` object, or ``None``.

    Upstream data is not trusted: only non-negative integers count.
    """
    if not isinstance(usage, dict):
        return None
    out: dict[str, int] = {}
    for name in _FIELDS:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[name] = value
    if not out:
        return None
    out.setdefault("total_tokens", out.get("prompt_tokens", 0) + out.get("completion_tokens", 0))
    return out


class UsageBook:
    def __init__(self) -> None:
        self._by_name: dict[str, Usage] = {}

    def _get(self, principal: Principal) -> Usage:
        usage = self._by_name.get(principal.name)
        if usage is None:
            usage = self._by_name[principal.name] = Usage()
        return usage

    def record(self, principal: Principal, usage: Any) -> None:
        """One finished request of ``principal``, with the upstream's usage if any."""
        book = self._get(principal)
        book.requests += 1
        counts = clean_usage(usage)
        if counts is None:
            return
        book.requests_with_usage += 1
        book.prompt_tokens += counts.get("prompt_tokens", 0)
        book.completion_tokens += counts.get("completion_tokens", 0)
        book.total_tokens += counts["total_tokens"]

    def report(self, principal: Principal) -> dict[str, Any]:
        return {"object": "usage", "client": principal.name, **asdict(self._get(principal))}
