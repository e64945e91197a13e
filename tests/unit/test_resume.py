"""Last-Event-ID parsing and the owner check: pure input validation."""

from __future__ import annotations

import pytest

from tornado_sse.errors import RequestError
from tornado_sse.resume import EventRef, check_stream_id, may_access, parse_event_id, requested
from tornado_sse.session import new_stream_id

SID = "AbCdEfGhIjKlMnOpQrStUv"


def test_parses_stream_and_seq() -> None:
    assert parse_event_id(f"{SID}:17") == EventRef(SID, 17)
    assert parse_event_id(f"  {SID}:0 ") == EventRef(SID, 0)


def test_bare_stream_id_means_from_the_beginning() -> None:
    assert parse_event_id(SID) == EventRef(SID, 0)


def test_ids_we_make_parse() -> None:
    sid = new_stream_id()
    assert parse_event_id(f"{sid}:3") == EventRef(sid, 3)
    assert check_stream_id(sid) == sid


@pytest.mark.parametrize("value", [
    "", "short:1", f"{SID}:", f"{SID}:-1", f"{SID}:1.5", f"{SID}:1:2", f"{SID}:x",
    f"{SID}:{'9' * 19}", f"{SID}/../x:1", f"{SID}\n:1", "é" * 22 + ":1", "A" * 65 + ":1",
    f"{SID}:1 2",
])
def test_malformed_ids_are_400(value: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_event_id(value)
    assert info.value.status == 400
    assert info.value.code == "bad_last_event_id"
    assert "Last-Event-ID" in info.value.message


def test_header_wins_over_query() -> None:
    # A browser keeps ?lastEventId= in its URL on every reconnect but sends its
    # newer position as the header.
    assert requested(f"{SID}:9", f"{SID}:2") == EventRef(SID, 9)
    assert requested(None, f"{SID}:2") == EventRef(SID, 2)
    assert requested("", f"{SID}:2") == EventRef(SID, 2)
    assert requested(None, None) is None
    assert requested("  ", "") is None


@pytest.mark.parametrize("value", ["x", "a/b", "A" * 15, "A" * 65, ""])
def test_bad_stream_ids(value: str) -> None:
    with pytest.raises(RequestError) as info:
        check_stream_id(value)
    assert info.value.status == 400 and info.value.code == "bad_stream_id"


def test_owner_check() -> None:
    assert may_access(None, None)
    assert may_access(None, "alice")  # no tokens configured: the id is the capability
    assert may_access("alice", "alice")
    assert not may_access("alice", "bob")
    assert not may_access("alice", None)
