"""Tests for tornado_sse.sse.SSEParser: WHATWG examples and an edge-case corpus.

Most tests go through ``parse()``, which feeds the stream whole *and* one byte
at a time and checks both give the same events, so every case here is also a
chunking test for free.
"""

from __future__ import annotations

import pytest

from tornado_sse.sse import ServerSentEvent, SSEBufferOverflow, SSEError, SSEParser

E = ServerSentEvent


def feed_chunks(parser: SSEParser, chunks: list[bytes]) -> list[ServerSentEvent]:
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


def parse(stream: bytes) -> list[ServerSentEvent]:
    """Parse ``stream`` whole and byte by byte; assert both agree."""
    whole = feed_chunks(SSEParser(), [stream])
    single = feed_chunks(SSEParser(), [stream[i : i + 1] for i in range(len(stream))])
    assert single == whole
    return whole


# --- WHATWG HTML "Server-sent events" examples ------------------------------


def test_spec_intro_messages() -> None:
    stream = (
        b"data: This is the first message.\n\n"
        b"data: This is the second message, it\n"
        b"data: has two lines.\n\n"
        b"data: This is the third message.\n\n"
    )
    assert parse(stream) == [
        E(data="This is the first message."),
        E(data="This is the second message, it\nhas two lines."),
        E(data="This is the third message."),
    ]


def test_spec_intro_event_types() -> None:
    stream = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n"
    stream += b"event: add\ndata: 113411\n\n"
    assert parse(stream) == [
        E("add", "73857293"),
        E("remove", "2153"),
        E("add", "113411"),
    ]


def test_spec_stock_example() -> None:
    assert parse(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [E(data="YHOO\n+2\n10")]


def test_spec_comment_and_first_second_third_ids() -> None:
    stream = (
        b": test stream\n"
        b"\n"
        b"data: first event\n"
        b"id: 1\n"
        b"\n"
        b"data:second event\n"
        b"id\n"
        b"\n"
        b"data:  third event\n"
        b"\n"
    )
    comments: list[str] = []
    parser = SSEParser(on_comment=comments.append)
    events = feed_chunks(parser, [stream])
    assert events == [
        E(data="first event", id="1"),
        # "id" with no colon resets the last event ID to "".
        E(data="second event", id=""),
        # Only one space is stripped.
        E(data=" third event", id=""),
    ]
    assert comments == ["test stream"]
    assert parse(stream) == events


def test_spec_empty_data_events_and_unterminated_last() -> None:
    # "data\n\ndata\ndata\n\ndata:" -> "" then "\n"; the last one is discarded.
    assert parse(b"data\n\ndata\ndata\n\ndata:") == [E(data=""), E(data="\n")]


def test_spec_space_after_colon_is_optional() -> None:
    assert parse(b"data:test\n\ndata: test\n\n") == [E(data="test"), E(data="test")]


# --- line ends ----------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["lf", "cr", "crlf"])
def test_each_line_end_style(eol: bytes) -> None:
    stream = b"event: x" + eol + b"data: a" + eol + b"data: b" + eol + eol
    assert parse(stream) == [E("x", "a\nb")]


def test_mixed_line_ends_in_one_stream() -> None:
    stream = b"data: a\rdata: b\r\ndata: c\n\r\n" + b"data: d\r\r"
    assert parse(stream) == [E(data="a\nb\nc"), E(data="d")]


def test_regression_cr_at_chunk_end_then_lf_at_next_start_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # If the LF were a second line end it would dispatch "a" right here.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [E(data="a\nb")]
    assert parser.feed(b"\n") == []  # the LF of that last CRLF, not a new line
    assert parser.feed(b"data: c\n\n") == [E(data="c")]


def test_regression_cr_at_chunk_end_then_non_lf() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"data: b\r") == []
    assert parser.feed(b"\r") == [E(data="a\nb")]


def test_regression_cr_then_empty_chunk_then_lf() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [E(data="a")]


def test_regression_lone_cr_blank_line_split_across_chunks() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [E(data="a")]
    assert parser.feed(b"\n") == []  # completes the CRLF of the blank line
    assert parser.close() == []


def test_regression_unicode_line_separators_are_not_line_ends() -> None:
    # str.splitlines() would split on these; the SSE grammar does not.
    payload = "a\x85b\u2028c\u2029d\x0be\x0cf\x1cg\x1dh\x1ei"
    assert parse(b"data: " + payload.encode() + b"\n\n") == [E(data=payload)]


# --- BOM ----------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


def test_bom_stripped() -> None:
    assert parse(BOM + b"data: x\n\n") == [E(data="x")]


def test_regression_bom_only_once() -> None:
    # The second BOM is part of the first field name, so that line is an
    # unknown field ("\ufeffdata") and is ignored.
    assert parse(BOM + BOM + b"data: x\n\ndata: y\n\n") == [E(data="y")]


@pytest.mark.parametrize("cut", [1, 2], ids=["1+2", "2+1"])
def test_regression_bom_split_across_chunks(cut: int) -> None:
    parser = SSEParser()
    assert parser.feed(BOM[:cut]) == []
    assert parser.feed(BOM[cut:] + b"data: x\n\n") == [E(data="x")]


def test_regression_bom_not_stripped_later_in_stream() -> None:
    assert parse(b"data: a\n\n" + BOM + b"data: b\n\ndata: c\n\n") == [
        E(data="a"),
        E(data="c"),
    ]


def test_regression_bom_prefix_that_is_not_a_bom_is_kept() -> None:
    # b"\xef\xbb" followed by something else is just (invalid) UTF-8 data.
    parser = SSEParser()
    assert parser.feed(b"\xef") == []
    assert parser.feed(b"\xbb") == []
    assert parser.feed(b"x\n\ndata: y\n\n") == [E(data="y")]
    assert parse(b"\xef\xbbdata: y\n\n") == []


def test_bom_in_data_value_is_preserved() -> None:
    assert parse(b"data: " + BOM + b"x\n\n") == [E(data="\ufeffx")]


# --- fields ---------------------------------------------------------------------


def test_field_without_colon_has_empty_value() -> None:
    assert parse(b"data\n\n") == [E(data="")]
    assert parse(b"event\ndata: x\n\n") == [E("message", "x")]


def test_data_without_space() -> None:
    assert parse(b"data:x\n\n") == [E(data="x")]


def test_only_one_space_stripped_and_other_whitespace_kept() -> None:
    assert parse(b"data:  x \n\n") == [E(data=" x ")]
    assert parse(b"data:\tx\n\n") == [E(data="\tx")]


def test_colon_in_value_is_kept() -> None:
    assert parse(b"data: a: b:c\n\n") == [E(data="a: b:c")]


def test_multi_line_data_joined_with_lf() -> None:
    assert parse(b"data: a\ndata:\ndata: c\ndata\n\n") == [E(data="a\n\nc\n")]


def test_field_names_are_case_sensitive_and_exact() -> None:
    stream = b"Data: x\ndata : y\n data: z\nDATA: w\ndata: ok\n\n"
    assert parse(stream) == [E(data="ok")]


def test_unknown_fields_ignored() -> None:
    assert parse(b"foo: bar\ndata: x\nbaz\n\n") == [E(data="x")]


def test_event_type_and_reset_after_dispatch() -> None:
    stream = b"event: delta\ndata: 1\n\ndata: 2\n\n"
    assert parse(stream) == [E("delta", "1"), E("message", "2")]


def test_empty_event_field_means_message() -> None:
    assert parse(b"event:\ndata: x\n\n") == [E("message", "x")]


def test_last_event_field_wins() -> None:
    assert parse(b"event: a\nevent: b\ndata: x\n\n") == [E("b", "x")]


def test_event_type_reset_by_block_without_data() -> None:
    # A blank line with an empty data buffer still resets the event type.
    assert parse(b"event: a\n\ndata: x\n\n") == [E("message", "x")]


def test_no_data_field_no_dispatch() -> None:
    assert parse(b"event: a\nid: 1\nretry: 5\n\n\n\n") == []


def test_done_sentinel_passes_through_as_data() -> None:
    assert parse(b'data: {"a":1}\n\ndata: [DONE]\n\n') == [
        E(data='{"a":1}'),
        E(data="[DONE]"),
    ]


# --- id -----------------------------------------------------------------------


def test_id_persists_across_events() -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n"
    assert parse(stream) == [
        E(data="a", id="7"),
        E(data="b", id="7"),
        E(data="c", id="8"),
    ]


def test_empty_id_resets() -> None:
    assert parse(b"id: 7\ndata: a\n\nid:\ndata: b\n\n") == [
        E(data="a", id="7"),
        E(data="b", id=""),
    ]


def test_regression_nul_in_id_ignored() -> None:
    stream = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"
    assert parse(stream) == [E(data="a", id="1"), E(data="b", id="1")]
    parser = SSEParser()
    feed_chunks(parser, [stream])
    assert parser.last_event_id == "1"


def test_id_may_contain_non_ascii() -> None:
    assert parse("id: é🎉\ndata: x\n\n".encode()) == [E(data="x", id="é🎉")]


def test_last_event_id_updates_at_block_end_even_without_data() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 42\n") == []
    # Per spec the "last event ID string" only changes when the block ends.
    assert parser.last_event_id == ""
    assert parser.feed(b"\n") == []
    assert parser.last_event_id == "42"


def test_last_event_id_of_unterminated_block_not_committed() -> None:
    parser = SSEParser()
    feed_chunks(parser, [b"id: 1\ndata: a\n\nid: 2\ndata: b\n"])
    assert parser.last_event_id == "1"


# --- retry --------------------------------------------------------------------


def test_retry_valid() -> None:
    parser = SSEParser()
    assert parser.retry is None
    events = feed_chunks(parser, [b"retry: 3000\ndata: x\n\ndata: y\n\n"])
    assert events == [E(data="x", retry=3000), E(data="y")]
    assert parser.retry == 3000


def test_retry_without_data_updates_parser_but_dispatches_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(b"retry: 10\n\n") == []
    assert parser.retry == 10
    assert parser.feed(b"data: x\n\n") == [E(data="x")]


def test_retry_zero_and_leading_zeros() -> None:
    assert parse(b"retry: 0\ndata: x\n\n") == [E(data="x", retry=0)]
    assert parse(b"retry:0010\ndata: x\n\n") == [E(data="x", retry=10)]


@pytest.mark.parametrize(
    "value",
    [
        b"12a",
        b"",
        b"-1",
        b"+1",
        b" 5",  # two spaces in total after the colon: one is part of the value
        b"5 ",
        b"1.5",
        b"1e3",
        b"0x10",
        "٣".encode(),  # ARABIC-INDIC DIGIT THREE: a digit, but not ASCII
        "²".encode(),
    ],
    ids=repr,
)
def test_regression_invalid_retry_ignored(value: bytes) -> None:
    parser = SSEParser()
    events = feed_chunks(parser, [b"retry: 100\n\nretry: " + value + b"\ndata: x\n\n"])
    assert events == [E(data="x")]
    assert parser.retry == 100


def test_retry_without_colon_ignored() -> None:
    assert parse(b"retry\ndata: x\n\n") == [E(data="x")]


def test_regression_huge_retry_does_not_crash() -> None:
    # int() refuses > 4300 digits; the parser must not let that escape.
    parser = SSEParser()
    events = feed_chunks(parser, [b"retry: " + b"9" * 5000 + b"\ndata: x\n\n"])
    assert events == [E(data="x")]
    assert parser.retry is None
    events = feed_chunks(parser, [b"retry: " + b"0" * 5000 + b"7\ndata: x\n\n"])
    assert events == [E(data="x", retry=7)]


# --- comments -----------------------------------------------------------------


def test_comments_passed_to_on_comment() -> None:
    comments: list[str] = []
    parser = SSEParser(on_comment=comments.append)
    stream = b": keep-alive\n:no space\n:  two spaces\n:\n: \xe4\xbd\xa0\xe5\xa5\xbd\n"
    events = feed_chunks(parser, [stream + b"data: x\n\n"])
    assert events == [E(data="x")]
    assert comments == ["keep-alive", "no space", " two spaces", "", "你好"]


def test_comments_ignored_without_callback_and_do_not_split_event() -> None:
    assert parse(b"data: a\n: ping\ndata: b\n\n") == [E(data="a\nb")]


def test_comment_split_across_chunks_reported_once() -> None:
    comments: list[str] = []
    parser = SSEParser(on_comment=comments.append)
    for byte in b": keep-alive\r\n":
        parser.feed(bytes([byte]))
    assert comments == ["keep-alive"]


def test_unterminated_comment_at_close_is_discarded() -> None:
    comments: list[str] = []
    parser = SSEParser(on_comment=comments.append)
    assert feed_chunks(parser, [b": ping"]) == []
    assert comments == []


# --- end of stream --------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [b"data: x", b"data: x\n", b"data: x\r", b"data: x\r\n", b"event: e\ndata: x\n"],
    ids=repr,
)
def test_regression_unterminated_event_discarded(tail: bytes) -> None:
    assert parse(b"data: a\n\n" + tail) == [E(data="a")]


def test_close_allows_reuse_for_next_stream_keeping_id_and_retry() -> None:
    parser = SSEParser()
    assert parser.feed(b"retry: 5\nid: 9\ndata: a\n\ndata: lost\n") == [
        E(data="a", id="9", retry=5)
    ]
    assert parser.close() == []
    # The new stream starts fresh (may have its own BOM, no pending data).
    assert parser.feed(BOM + b"data: b\n\n") == [E(data="b", id="9")]
    assert parser.last_event_id == "9"
    assert parser.retry == 5


def test_uncommitted_id_not_carried_into_next_stream() -> None:
    parser = SSEParser()
    parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert parser.close() == []
    assert parser.feed(b"data: c\n\n") == [E(data="c", id="1")]
    assert parser.last_event_id == "1"


def test_empty_and_blank_streams() -> None:
    assert parse(b"") == []
    assert parse(b"\n\n\r\n\r\r") == []


# --- UTF-8 ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["中文字符", "🎉🚀", "é", "a中🎉b"], ids=repr)
def test_regression_utf8_char_split_across_chunks(text: str) -> None:
    stream = ("data: " + text + "\n\n").encode()
    expected = [E(data=text)]
    for cut in range(len(stream) + 1):
        parser = SSEParser()
        assert feed_chunks(parser, [stream[:cut], stream[cut:]]) == expected, cut


def test_invalid_utf8_replaced_not_raised() -> None:
    assert parse(b"data: a\xffb\xe4\xbd\n\n") == [E(data="a\ufffdb\ufffd")]


def test_invalid_utf8_does_not_swallow_line_end() -> None:
    # A truncated multibyte sequence right before LF must not eat the LF.
    assert parse(b"data: \xe4\ndata: b\n\n") == [E(data="\ufffd\nb")]


def test_invalid_utf8_in_event_type_and_comment() -> None:
    comments: list[str] = []
    parser = SSEParser(on_comment=comments.append)
    events = feed_chunks(parser, [b":\xff\nevent: \xfe\ndata: x\n\n"])
    assert events == [E("\ufffd", "x")]
    assert comments == ["\ufffd"]


# --- max_buffer -----------------------------------------------------------------


def test_regression_buffer_cap_incomplete_line() -> None:
    parser = SSEParser(max_buffer=16)
    assert parser.feed(b"data: 0123456789") == []  # exactly 16: fine
    with pytest.raises(SSEBufferOverflow) as info:
        parser.feed(b"x")
    assert info.value.limit == 16
    assert info.value.size == 17
    assert isinstance(info.value, SSEError)
    assert "17" in str(info.value) and "16" in str(info.value)


def test_regression_buffer_cap_long_complete_line_in_one_chunk() -> None:
    parser = SSEParser(max_buffer=16)
    with pytest.raises(SSEBufferOverflow) as info:
        parser.feed(b"data: 0123456789ABCDEF\n\n")
    assert (info.value.limit, info.value.size) == (16, 22)


def test_regression_buffer_cap_line_completed_by_later_chunk() -> None:
    parser = SSEParser(max_buffer=16)
    parser.feed(b"data: 0123456789")
    with pytest.raises(SSEBufferOverflow) as info:
        parser.feed(b"AB\n")
    assert info.value.size == 18


def test_regression_buffer_cap_long_ignored_field_line() -> None:
    parser = SSEParser(max_buffer=16)
    with pytest.raises(SSEBufferOverflow):
        parser.feed(b": " + b"x" * 100 + b"\n")


def test_regression_buffer_cap_accumulated_event_data() -> None:
    parser = SSEParser(max_buffer=10)
    # Each line is short, but the event's data grows: "abcd\nefgh" is 9 bytes.
    assert parser.feed(b"data: abcd\ndata: efgh\n") == []
    with pytest.raises(SSEBufferOverflow) as info:
        parser.feed(b"data: ij\n")
    assert (info.value.limit, info.value.size) == (10, 12)


def test_buffer_cap_counts_utf8_bytes_of_data() -> None:
    parser = SSEParser(max_buffer=9)
    # Each line is 8 bytes; the data is 5 characters but 3+1+3+1+3 = 11 bytes.
    with pytest.raises(SSEBufferOverflow) as info:
        parser.feed("data:中\n".encode() * 3)
    assert info.value.size == 11


def test_buffer_cap_data_exactly_at_limit_is_fine() -> None:
    parser = SSEParser(max_buffer=10)
    # Lines of 10 bytes, data "abcd\nefghi" of exactly 10 bytes.
    assert parser.feed(b"data: abcd\ndata:efghi\n\n") == [E(data="abcd\nefghi")]
    # The cap is per event: the next event starts from zero.
    assert parser.feed(b"data: abcd\ndata:efghi\n\n") == [E(data="abcd\nefghi")]


def test_buffer_cap_data_one_byte_over_limit() -> None:
    parser = SSEParser(max_buffer=10)
    # Lines of 8 bytes; the data "abc\ndef\nghi" is 11 bytes: one too many.
    with pytest.raises(SSEBufferOverflow) as info:
        parser.feed(b"data:abc\ndata:def\ndata:ghi\n")
    assert (info.value.limit, info.value.size) == (10, 11)


def test_buffer_cap_not_triggered_by_many_small_events_in_one_chunk() -> None:
    parser = SSEParser(max_buffer=16)
    assert parser.feed(b"data: x\n\n" * 100) == [E(data="x")] * 100


def test_parser_unusable_after_overflow() -> None:
    parser = SSEParser(max_buffer=4)
    with pytest.raises(SSEBufferOverflow):
        parser.feed(b"data: toolong")
    with pytest.raises(SSEError):
        parser.feed(b"\n\n")
    assert parser.close() == []


def test_overflow_error_attributes() -> None:
    err = SSEBufferOverflow(limit=5, size=9)
    assert (err.limit, err.size) == (5, 9)
    assert isinstance(err, SSEError) and isinstance(err, Exception)


# --- misc -----------------------------------------------------------------------


def test_server_sent_event_defaults_and_frozen() -> None:
    event = ServerSentEvent()
    assert (event.event, event.data, event.id, event.retry) == ("message", "", "", None)
    with pytest.raises(AttributeError):
        event.data = "x"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")  # slots


def test_feed_returns_only_events_completed_by_this_chunk() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b\n") == [E(data="a")]
    assert parser.feed(b"\ndata: c\n\nda") == [E(data="b"), E(data="c")]
    assert parser.feed(b"ta: d\n\n") == [E(data="d")]
