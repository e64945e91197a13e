"""Server-Sent Events protocol layer: parser and encoder, no I/O.

This is the import point for the rest of the project; the implementation is
split into :mod:`tornado_sse.sse_parser` (bytes -> :class:`ServerSentEvent`)
and :mod:`tornado_sse.sse_encoder` (event fields -> bytes) only to keep each
module small.  Both follow the WHATWG HTML "Server-sent events" section.
"""

from __future__ import annotations

from tornado_sse.sse_encoder import encode_comment, encode_event, encode_retry
from tornado_sse.sse_parser import (
    ServerSentEvent,
    SSEBufferOverflow,
    SSEError,
    SSEParser,
)

__all__ = [
    "SSEBufferOverflow",
    "SSEError",
    "SSEParser",
    "ServerSentEvent",
    "encode_comment",
    "encode_event",
    "encode_retry",
]
