"""Incremental, I/O-free parser for ``text/event-stream`` (Server-Sent Events).

Implements the WHATWG HTML algorithm "Interpreting an event stream"
(https://html.spec.whatwg.org/multipage/server-sent-events.html) on raw bytes
as they arrive from the network, in arbitrary chunks.

Design notes (why it looks the way it does):

* The stream is split into lines on *bytes* and only then decoded.  The line
  terminators (CR, LF) are ASCII and can never occur inside a UTF-8 multibyte
  sequence, so a character split across two chunks simply stays in the
  pending-line buffer until its line is complete, and decoding a complete line
  can never see half a character that the next chunk would have completed.
* ``bytes.splitlines`` splits on exactly CR, LF and CRLF -- the three SSE line
  terminators -- in C.  (``str.splitlines`` would also split on U+0085,
  U+2028, VT, FF, ... which the SSE grammar treats as ordinary characters, so
  it must never be used here.)  Python-level work is therefore per line, never
  per byte; only the chunk edges need care: an incomplete last line is kept,
  and a CR ending one chunk may be the first half of a CRLF whose LF starts the
  next chunk, so we remember it and drop that LF.
* Field names and values are handled as bytes; a value is decoded once per
  dispatched event (data lines are joined with b"\\n" first).  Splitting at
  the ASCII ``:`` / ``\\n`` cannot change the result of UTF-8 decoding with
  ``errors="replace"``, because an ASCII byte always ends a malformed sequence.
* ``max_buffer`` bounds memory against a hostile or broken upstream: a line
  or one event's data larger than that raises :class:`SSEBufferOverflow`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

__all__ = ["SSEBufferOverflow", "SSEError", "SSEParser", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"
_MAX_RETRY_DIGITS = 4000


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    ``event`` is ``"message"`` when the block had no (or an empty) ``event``
    field; ``id`` is the parser's last event ID at dispatch time (it persists
    across events, as in the spec); ``retry`` is the reconnection time only if
    a valid ``retry`` field occurred in this event's block, else ``None``.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class SSEError(Exception):
    """Base class for errors raised by the SSE layer."""


class SSEBufferOverflow(SSEError):
    """A line, or one event's accumulated data, exceeded the parser's limit.

    ``limit`` is the configured ``max_buffer`` and ``size`` the size in bytes
    that exceeded it (a line's length including its field name, or the UTF-8
    length of the event's data joined with newlines).
    """

    def __init__(self, limit: int, size: int) -> None:
        super().__init__(
            f"SSE buffer overflow: {size} bytes exceeds limit of {limit} bytes"
        )
        self.limit = limit
        self.size = size


class SSEParser:
    """Feed it bytes, get :class:`ServerSentEvent` objects back.

    ``feed()`` accepts any chunking (down to one byte at a time) and returns
    the events *completed* by that chunk.  ``close()`` marks the end of the
    stream; per spec an event whose block was not terminated by a blank line
    is discarded, so it returns ``[]``.  After ``close()`` the same parser may
    read a following stream (e.g. after a reconnect): ``last_event_id`` and
    ``retry`` are kept, like an ``EventSource`` object keeps them.

    If ``feed()`` raises :class:`SSEBufferOverflow` the parser is left in an
    undefined state and must not be used for this stream any more: the caller
    has to abort the stream.  Further ``feed()`` calls raise :class:`SSEError`.

    ``on_comment`` is called from within ``feed()`` (so before ``feed`` returns
    the events of the same chunk), with the text of each comment line, without
    the ``:`` and one following space.  Comments are not events: for a relay
    they are keep-alives, which is why they are a callback and not returned.
    """

    last_event_id: str
    """The spec's "last event ID string": updated when a block ends (blank
    line), to the value of the last valid ``id`` field seen so far."""

    retry: int | None
    """Last valid reconnection time (ms) seen in the stream, else ``None``."""

    def __init__(
        self,
        max_buffer: int = 1 << 20,
        on_comment: Callable[[str], None] | None = None,
    ) -> None:
        self.max_buffer = max_buffer
        self.on_comment = on_comment
        self.last_event_id = ""
        self.retry = None
        self._id_buffer = ""  # spec's "last event ID buffer" (set by id: fields)
        self._failed = False
        self._reset_stream()

    def _reset_stream(self) -> None:
        # None once the BOM question is settled; otherwise the 0-2 bytes seen
        # so far that are still a prefix of a BOM.
        self._bom: bytes | None = b""
        self._pending_cr = False  # last chunk ended in CR; drop a leading LF
        self._partial: list[bytes] = []  # pieces of the incomplete last line
        self._partial_size = 0
        self._reset_block()

    def _reset_block(self) -> None:
        self._data: list[bytes] = []
        self._data_size = 0  # sum(len(value) + 1) == len(joined data) + 1
        self._event_type = b""
        self._block_retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk``; return the events whose block it completed."""
        if self._failed:
            raise SSEError("SSEParser is unusable after a buffer overflow")
        if not chunk:
            # Must not reach the CR handling below: an empty chunk between a
            # CR and its LF would otherwise forget the pending CR.
            return []
        if self._bom is not None:
            head = self._bom + chunk
            if len(head) < 3 and _BOM.startswith(head):
                self._bom = head  # could still become a BOM: wait for more
                return []
            self._bom = None
            chunk = head[3:] if head.startswith(_BOM) else head
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]  # second half of a CRLF split over chunks
        if not chunk:
            return []
        limit = self.max_buffer
        if b"\n" not in chunk and b"\r" not in chunk:
            # No line end: just buffer.  Pieces are joined only once a line
            # completes, so feeding a long line byte by byte stays linear.
            self._partial.append(chunk)
            self._partial_size += len(chunk)
            if self._partial_size > limit:
                self._fail(self._partial_size)
            return []
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
        lines = chunk.splitlines()
        last = chunk[-1]
        if last == 13:  # b"\r"
            self._pending_cr = True
        elif last != 10:  # b"\n": otherwise the last line is incomplete
            tail = lines.pop()
            self._partial.append(tail)
            self._partial_size = len(tail)
        if len(chunk) > limit:  # cheap test first; only then look at lines
            longest = max(len(line) for line in lines) if lines else 0
            size = max(longest, self._partial_size)
            if size > limit:
                self._fail(size)
        return self._process(lines, limit)

    def close(self) -> list[ServerSentEvent]:
        """End of stream: discard any unterminated line and event.

        Always returns ``[]`` (kept as a list for symmetry with ``feed``).
        """
        if not self._failed:
            self._reset_stream()
            # An id: field in the discarded block was never committed.  The
            # next stream starts from the committed ID, as browsers do (the
            # spec literally says "empty string", but that would make an
            # id-less event after a reconnect erase the client's resume point).
            self._id_buffer = self.last_event_id
        return []

    def _fail(self, size: int) -> NoReturn:
        self._failed = True
        raise SSEBufferOverflow(self.max_buffer, size)

    def _process(self, lines: list[bytes], limit: int) -> list[ServerSentEvent]:
        # Hot loop: attributes are cached in locals and written back at the end.
        events: list[ServerSentEvent] = []
        data = self._data
        data_size = self._data_size
        event_type = self._event_type
        block_retry = self._block_retry
        on_comment = self.on_comment
        for line in lines:
            if not line:
                # Blank line: dispatch.  The spec updates the last event ID
                # string even when there is no data to dispatch.
                self.last_event_id = self._id_buffer
                if data:
                    raw = data[0] if len(data) == 1 else b"\n".join(data)
                    etype = event_type.decode("utf-8", "replace") or "message"
                    events.append(
                        ServerSentEvent(
                            etype,
                            raw.decode("utf-8", "replace"),
                            self._id_buffer,
                            block_retry,
                        )
                    )
                    data = []
                    data_size = 0
                event_type = b""
                block_retry = None
                continue
            colon = line.find(b":")
            if colon == 0:
                if on_comment is not None:
                    start = 2 if line.startswith(b" ", 1) else 1
                    on_comment(line[start:].decode("utf-8", "replace"))
                continue
            if colon < 0:
                name = line
                value = b""
            else:
                name = line[:colon]
                # Exactly one space after the colon is part of the syntax.
                value = (
                    line[colon + 2 :]
                    if line.startswith(b" ", colon + 1)
                    else line[colon + 1 :]
                )
            if name == b"data":
                data.append(value)
                data_size += len(value) + 1
                if data_size > limit + 1:
                    self._fail(data_size - 1)
            elif name == b"event":
                event_type = value
            elif name == b"id":
                if b"\x00" not in value:
                    self._id_buffer = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():
                # Only ASCII digits: isdigit() on bytes is ASCII-only and
                # False for b"" (so "retry:" and "retry: -1" are ignored).
                digits = value.lstrip(b"0") or b"0"
                # int() refuses > 4300 digits (CPython's DoS guard); such a
                # value is garbage anyway, so it is ignored like any other.
                if len(digits) <= _MAX_RETRY_DIGITS:
                    block_retry = self.retry = int(digits)
            # Any other field name is ignored, as the spec requires.
        self._data = data
        self._data_size = data_size
        self._event_type = event_type
        self._block_retry = block_retry
        return events
