"""Redaction of secrets from text bound for the log.

Upstream error bodies and curl messages may echo the API key or a URL with
credentials; every such text passes through :func:`redact` before it is logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PATTERNS = [
    # Bearer tokens and OpenAI-style keys (sk-..., sk-proj-...).
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[REDACTED]"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "[REDACTED]"),
    # user:password@ in URLs.
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s:]*:[^/@\s]*@"), r"\1[REDACTED]@"),
    # key=... / api_key: ... in query strings and JSON-ish text.
    (
        re.compile(r"(?i)((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"),
        r"\1[REDACTED]",
    ),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with known secrets and secret-looking values replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text
