"""Exact-byte tests for tornado_sse.sse encoders (encode_event/comment/retry).

Besides the bytes themselves, injection cases are decoded with SSEParser to
show that hostile strings cannot create an extra event or field.
"""

from __future__ import annotations

import pytest

from tornado_sse.sse import (
    ServerSentEvent,
    SSEParser,
    encode_comment,
    encode_event,
    encode_retry,
)


def decode(stream: bytes) -> list[ServerSentEvent]:
    parser = SSEParser()
    return parser.feed(stream) + parser.close()


# --- encode_event: exact bytes --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": "[DONE]"}, b"data: [DONE]\n\n"),
        ({"data": '{"a": 1}'}, b'data: {"a": 1}\n\n'),
        ({"data": "x", "event": "delta"}, b"event: delta\ndata: x\n\n"),
        ({"data": "x", "id": "42"}, b"id: 42\ndata: x\n\n"),
        ({"data": "x", "id": ""}, b"id: \ndata: x\n\n"),
        ({"data": "x", "retry": 3000}, b"retry: 3000\ndata: x\n\n"),
        ({"data": "x", "retry": 0}, b"retry: 0\ndata: x\n\n"),
        (
            {"data": "x", "event": "e", "id": "1", "retry": 5},
            b"event: e\nid: 1\nretry: 5\ndata: x\n\n",
        ),
        # Keyword order does not matter; field order is fixed.
        (
            {"retry": 5, "id": "1", "event": "e", "data": "x"},
            b"event: e\nid: 1\nretry: 5\ndata: x\n\n",
        ),
        ({"data": " leading space"}, b"data:  leading space\n\n"),
        ({"data": ": not a comment"}, b"data: : not a comment\n\n"),
        ({"data": "data: nested"}, b"data: data: nested\n\n"),
    ],
)
def test_encode_event_exact(kwargs: dict[str, object], expected: bytes) -> None:
    assert encode_event(**kwargs) == expected  # type: ignore[arg-type]


def test_encode_event_positional_signature() -> None:
    assert encode_event("d", "e", "i", 7) == b"event: e\nid: i\nretry: 7\ndata: d\n\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("a\nb", b"data: a\ndata: b\n\n"),
        ("a\rb", b"data: a\ndata: b\n\n"),
        ("a\r\nb", b"data: a\ndata: b\n\n"),
        ("a\n\rb", b"data: a\ndata: \ndata: b\n\n"),
        ("a\n\nb", b"data: a\ndata: \ndata: b\n\n"),
        ("\n", b"data: \ndata: \n\n"),
        ("a\n", b"data: a\ndata: \n\n"),
        ("\r\n\r\n", b"data: \ndata: \ndata: \n\n"),
    ],
    ids=repr,
)
def test_encode_event_multiline_data(data: str, expected: bytes) -> None:
    assert encode_event(data) == expected


def test_encode_event_unicode_as_is_utf8() -> None:
    assert encode_event("你好 🎉", event="ü", id="é") == (
        "event: ü\nid: é\ndata: 你好 🎉\n\n".encode()
    )


def test_encode_event_unicode_line_separators_not_split() -> None:
    # str.splitlines() would split these; SSE does not treat them as line ends.
    data = "a\x85b\u2028c\u2029d\x0be\x0cf\x1cg"
    assert encode_event(data) == b"data: " + data.encode() + b"\n\n"
    assert decode(encode_event(data)) == [ServerSentEvent(data=data)]


def test_encode_event_nul_in_data_kept() -> None:
    assert encode_event("a\x00b") == b"data: a\x00b\n\n"


def test_encode_event_lone_surrogate_raises() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_event("\ud800")


# --- encode_event: injection ----------------------------------------------------


def test_regression_data_cannot_inject_event() -> None:
    hostile = "x\n\nevent: admin\ndata: pwned\nid: 666\nretry: 1\n\n"
    encoded = encode_event(hostile)
    assert encoded == (
        b"data: x\ndata: \ndata: event: admin\ndata: data: pwned\n"
        b"data: id: 666\ndata: retry: 1\ndata: \ndata: \n\n"
    )
    assert decode(encoded) == [ServerSentEvent(data=hostile)]


@pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"], ids=repr)
def test_regression_event_and_id_cannot_inject_fields(eol: str) -> None:
    encoded = encode_event("x", event=f"a{eol}data: evil{eol}", id=f"1{eol}{eol}2")
    assert encoded == b"event: adata: evil\nid: 12\ndata: x\n\n"
    assert decode(encoded) == [ServerSentEvent("adata: evil", "x", "12")]


def test_regression_nul_stripped_from_id() -> None:
    encoded = encode_event("x", id="1\x002")
    assert encoded == b"id: 12\ndata: x\n\n"
    assert decode(encoded) == [ServerSentEvent(data="x", id="12")]


def test_nul_kept_in_event_type() -> None:
    # The parser does not ignore event types containing NUL, so nothing to do.
    assert encode_event("x", event="a\x00") == b"event: a\x00\ndata: x\n\n"


@pytest.mark.parametrize("bad", [-1, 1.5, "3000", True, [1]], ids=repr)
def test_encode_event_invalid_retry(bad: object) -> None:
    with pytest.raises(ValueError, match="retry"):
        encode_event("x", retry=bad)  # type: ignore[arg-type]


def test_empty_data_decodes_back_to_empty_string() -> None:
    assert decode(encode_event("")) == [ServerSentEvent(data="")]
    assert decode(encode_event("", event="ping")) == [ServerSentEvent("ping", "")]


# --- encode_comment ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keep-alive", b": keep-alive\n\n"),
        ("", b": \n\n"),
        ("a\nb", b": a\n: b\n\n"),
        ("a\rb\r\nc", b": a\n: b\n: c\n\n"),
        ("a\n", b": a\n: \n\n"),
        ("你好", ": 你好\n\n".encode()),
        (" x", b":  x\n\n"),
    ],
    ids=repr,
)
def test_encode_comment_exact(text: str, expected: bytes) -> None:
    assert encode_comment(text) == expected


def test_encode_comment_default() -> None:
    assert encode_comment() == b": \n\n"


def test_regression_comment_cannot_inject_event() -> None:
    comments: list[str] = []
    parser = SSEParser(on_comment=comments.append)
    text = "hi\n\ndata: pwned\r\nevent: x"
    assert parser.feed(encode_comment(text)) == []
    assert comments == ["hi", "", "data: pwned", "event: x"]


def test_comment_between_data_lines_of_events_dispatches_nothing() -> None:
    stream = encode_event("a") + encode_comment("ping") + encode_event("b")
    assert decode(stream) == [ServerSentEvent(data="a"), ServerSentEvent(data="b")]


# --- encode_retry -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (3000, b"retry: 3000\n\n"),
        (0, b"retry: 0\n\n"),
        (10**12, b"retry: 1000000000000\n\n"),
    ],
)
def test_encode_retry_exact(ms: int, expected: bytes) -> None:
    assert encode_retry(ms) == expected


def test_encode_retry_is_understood_by_parser() -> None:
    parser = SSEParser()
    assert parser.feed(encode_retry(1500)) == []
    assert parser.retry == 1500


@pytest.mark.parametrize("bad", [-1, 2.0, "5", False, None], ids=repr)
def test_encode_retry_invalid(bad: object) -> None:
    with pytest.raises(ValueError, match="retry"):
        encode_retry(bad)  # type: ignore[arg-type]
