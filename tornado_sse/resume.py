"""What a resume request asks for, validated. Pure: strings in, an :class:`EventRef` or
a :class:`~tornado_sse.errors.RequestError` out.

Event ids have the form ``<stream-id>:<seq>``: ``start`` is ``:0``, updates count from
``:1``, and ``end`` is one past the last update, so a client that saw ``end`` and
reconnects anyway is told (with ``204``) that nothing is left. A client that only
knows the stream id (say from the ``X-Stream-Id`` header) may send the bare id,
which means "from the beginning".
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from .errors import RequestError

# new_stream_id() makes 22 URL-safe characters; accept a little either side so
# ids from other producers (a later id scheme, tests) still parse.
_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
# 18 digits: any real sequence number, and never a huge int from hostile input.
_EVENT_ID = re.compile(r"([A-Za-z0-9_-]{16,64})(?::([0-9]{1,18}))?")


@dataclass(frozen=True)
class EventRef:
    """The last event a client saw: resume with the events after ``seq``."""

    stream_id: str
    seq: int


def event_id(stream_id: str, seq: int) -> str:
    return f"{stream_id}:{seq}"


def check_stream_id(value: str) -> str:
    if not _STREAM_ID.fullmatch(value):
        raise RequestError(400, "bad_stream_id", "That is not a stream id.")
    return value


def parse_event_id(value: str) -> EventRef:
    match = _EVENT_ID.fullmatch(value.strip())
    if match is None:
        raise RequestError(400, "bad_last_event_id",
                           "Last-Event-ID must look like '<stream-id>:<seq>'.")
    return EventRef(match.group(1), int(match.group(2) or 0))


def requested(header: str | None, query: str | None) -> EventRef | None:
    """The resume point of a request, or ``None`` for a new stream.

    The header wins: a browser that was handed ``?lastEventId=`` in its URL keeps
    that URL on every automatic reconnect, but sends its newer position as the
    ``Last-Event-ID`` header.
    """
    for value in (header, query):
        if value is not None and value.strip():
            return parse_event_id(value)
    return None


def may_access(owner: str | None, requester: str | None) -> bool:
    """Whether ``requester`` may resume or stop a stream started by ``owner``.

    Streams started without an owner (no client tokens configured) are open to
    whoever holds their unguessable id. ``owner`` should be a non-secret identity
    (a token's name or digest), never the token itself, since stores keep it.
    """
    if owner is None:
        return True
    if requester is None:
        return False
    return hmac.compare_digest(owner.encode(), requester.encode())


class NotStreamOwner(RequestError):
    def __init__(self) -> None:
        super().__init__(403, "not_stream_owner", "This stream was started with another token.")
