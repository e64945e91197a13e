"""Serialise Server-Sent Events to ``text/event-stream`` bytes (no I/O).

The one security property that matters here: whatever the strings passed in
contain, the output must parse (by :mod:`tornado_sse.sse_parser` or any
WHATWG-conforming client) as exactly the event or comment that was asked
for -- never an extra event, never an extra field.  Text relayed from an LLM
is attacker-influenced, so:

* ``data`` is split into lines with the *parser's* line-end rules (CRLF, CR,
  LF) and each piece gets its own ``data:`` line, which the client joins back
  with ``\\n``.  (``str.splitlines`` is deliberately not used: it also splits
  on U+0085, U+2028, VT, FF, ... which SSE treats as ordinary characters, and
  would silently turn them into ``\\n``.)  Consequently CR and CRLF in data
  arrive at the client as LF; that is inherent to the format.
* CR and LF are removed from ``event`` and ``id`` (which cannot span lines),
  and NUL from ``id``, because a conforming client ignores an id containing
  NUL entirely.
* Comments are split into lines the same way, each line prefixed with ``:``.

Output uses ``\\n`` line ends and UTF-8 with non-ASCII characters as-is.
Strings containing lone surrogates cannot be encoded as UTF-8 and raise
``UnicodeEncodeError`` rather than being silently altered.
"""

from __future__ import annotations

import re

__all__ = ["encode_comment", "encode_event", "encode_retry"]

_LINE_END = re.compile(r"\r\n|\r|\n")
# str.translate tables: delete the characters.
_STRIP_EVENT = {0x0D: None, 0x0A: None}
_STRIP_ID = {0x0D: None, 0x0A: None, 0x00: None}


def _check_retry(ms: int) -> int:
    # bool is an int subclass but "retry: True" would be nonsense.
    if type(ms) is not int or ms < 0:
        raise ValueError(f"retry must be a non-negative int, got {ms!r}")
    return ms


def encode_event(
    data: str,
    event: str | None = None,
    id: str | None = None,  # shadows the builtin on purpose: the SSE field name
    retry: int | None = None,
) -> bytes:
    """Encode one event: ``event:``, ``id:``, ``retry:``, ``data:`` lines, blank line.

    Fields left as ``None`` are omitted.  ``id=""`` is emitted as ``id: ``,
    which tells the client to reset its last event ID.  Empty ``data``
    becomes a single ``data: `` line, which clients dispatch as an event with
    empty data (an event with no data line at all would not be dispatched).
    """
    head = ""
    if event is not None:
        head += "event: " + event.translate(_STRIP_EVENT) + "\n"
    if id is not None:
        head += "id: " + id.translate(_STRIP_ID) + "\n"
    if retry is not None:
        head += f"retry: {_check_retry(retry)}\n"
    if "\n" in data or "\r" in data:
        body = "data: " + "\ndata: ".join(_LINE_END.split(data))
    else:  # fast path: the usual one-line JSON payload
        body = "data: " + data
    return (head + body + "\n\n").encode("utf-8")


def encode_comment(text: str = "") -> bytes:
    """Encode a comment (e.g. a keep-alive): ``b": text\\n\\n"``.

    Each line of ``text`` becomes its own ``: `` line; the final blank line
    ends the block so the comment can never merge with a following event.
    """
    return (": " + "\n: ".join(_LINE_END.split(text)) + "\n\n").encode("utf-8")


def encode_retry(ms: int) -> bytes:
    """Encode a bare reconnection-time hint: ``b"retry: 3000\\n\\n"``."""
    return f"retry: {_check_retry(ms)}\n\n".encode("ascii")
