"""Property-based and exhaustive chunking tests for the SSE layer.

* encode -> parse round trip over random events (hostile characters included);
* realistic OpenAI-style streams cut at arbitrary points (chosen by
  hypothesis) or fed one byte at a time give the same events as fed whole;
* a deterministic sweep over every two-piece cut of the same streams, so the
  chunk-edge cases (CR|LF, split BOM, split multibyte character, ...) are
  covered without relying on hypothesis finding them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tornado_sse.sse import (
    ServerSentEvent,
    SSEParser,
    encode_comment,
    encode_event,
    encode_retry,
)

# No example database: it would write a .hypothesis/ directory into the
# shared working tree.  Failures are still printed with their reproducer.
# No deadline: byte-at-a-time feeding is slow-ish on a loaded CI machine.
SSE_SETTINGS = settings(database=None, deadline=None)

BOM = b"\xef\xbb\xbf"


def parse_chunks(chunks: list[bytes]) -> tuple[list[ServerSentEvent], list[str]]:
    comments: list[str] = []
    parser = SSEParser(on_comment=comments.append)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events, comments


def split_at(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(stream)]
    return [stream[a:b] for a, b in pairwise(bounds)]


# --- (1) encode -> parse round trip ---------------------------------------------

# Characters that matter to the SSE grammar or to naive implementations,
# mixed into otherwise arbitrary (non-surrogate) text.
_TRICKY = "\r\n\x00: \ufeff\x85\u2028\u2029\x0b\x0c\x1c\t中🎉"
_text = st.text(
    alphabet=st.one_of(st.sampled_from(_TRICKY), st.characters(codec="utf-8"))
)


@dataclass(frozen=True)
class _Spec:
    data: str
    event: str | None
    id: str | None
    retry: int | None


_specs = st.builds(
    _Spec,
    data=_text,
    event=st.none() | _text,
    id=st.none() | _text,
    retry=st.none() | st.integers(min_value=0, max_value=2**53),
)
# Things that are in the stream but are not events.
_noise = st.one_of(
    st.builds(encode_comment, _text),
    st.builds(encode_retry, st.integers(min_value=0, max_value=10**6)),
)


def _expected(specs: list[_Spec]) -> list[ServerSentEvent]:
    """What a WHATWG client must see for events built by encode_event."""
    events = []
    last_id = ""
    for spec in specs:
        if spec.id is not None:
            last_id = spec.id.replace("\r", "").replace("\n", "").replace("\x00", "")
        event = (spec.event or "").replace("\r", "").replace("\n", "") or "message"
        data = spec.data.replace("\r\n", "\n").replace("\r", "\n")
        events.append(ServerSentEvent(event, data, last_id, spec.retry))
    return events


@SSE_SETTINGS
@given(
    items=st.lists(st.one_of(_specs, _noise), max_size=12),
    bom=st.booleans(),
    data=st.data(),
)
def test_round_trip_encoded_events(
    items: list[_Spec | bytes], bom: bool, data: st.DataObject
) -> None:
    stream = BOM if bom else b""
    specs = []
    for item in items:
        if isinstance(item, bytes):
            stream += item
        else:
            specs.append(item)
            stream += encode_event(item.data, item.event, item.id, item.retry)
    expected = _expected(specs)
    assert parse_chunks([stream])[0] == expected
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8), label="cuts")
    assert parse_chunks(split_at(stream, cuts))[0] == expected


@SSE_SETTINGS
@given(text=_text)
def test_round_trip_comment(text: str) -> None:
    events, comments = parse_chunks([encode_comment(text)])
    assert events == []
    assert comments == text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


# --- (2) realistic streams, arbitrary chunking ------------------------------------

_CONTENT = ["Hello", "，世界", "！", " 🎉", "🚀 emoji", " 中文字符 ", "done."]


def _chunk_payload(i: int, delta: dict[str, object], finish: str | None = None) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-AbC123",
            "object": "chat.completion.chunk",
            "created": 1717000000 + i,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _openai_payloads() -> list[str]:
    payloads = [_chunk_payload(0, {"role": "assistant", "content": ""})]
    payloads += [_chunk_payload(i + 1, {"content": c}) for i, c in enumerate(_CONTENT)]
    payloads.append(_chunk_payload(99, {}, "stop"))
    payloads.append("[DONE]")
    return payloads


@dataclass(frozen=True)
class RealStream:
    name: str
    raw: bytes
    events: list[ServerSentEvent]
    comments: list[str]


def _openai_stream(name: str, eol: str, bom: bool, keepalive: bool) -> RealStream:
    payloads = _openai_payloads()
    text = ""
    comments = []
    for i, payload in enumerate(payloads):
        if keepalive and i % 3 == 0:
            text += ": keep-alive" + eol + eol
            comments.append("keep-alive")
        text += "data: " + payload + eol + eol
    raw = (BOM if bom else b"") + text.encode()
    return RealStream(name, raw, [ServerSentEvent(data=p) for p in payloads], comments)


def _featureful_stream() -> RealStream:
    # Mixed line ends, every field, multi-line data, a trailing unterminated
    # event that close() must discard.
    raw = (
        BOM + b": hello\r"
        b"retry: 2500\r\n"
        b"event: delta\r"
        b"id: 1\r\n"
        b'data: {"text":"\xe4\xbd\xa0\xe5\xa5\xbd"}\r\n'
        b"\r\n"
        b"id: 2\n"
        b"data: line one\r"
        b"data:line two \xf0\x9f\x8e\x89\r\n"
        b"data\n"
        b"\r"
        b"event: ignored-no-data\n"
        b"\n"
        b"data: [DONE]\r\n"
        b"\r\n"
        b"id: 3\r\n"
        b"data: unterminated"
    )
    events = [
        ServerSentEvent("delta", '{"text":"你好"}', "1", 2500),
        ServerSentEvent("message", "line one\nline two 🎉\n", "2"),
        ServerSentEvent("message", "[DONE]", "2"),
    ]
    return RealStream("featureful", raw, events, ["hello"])


REAL_STREAMS = [
    _openai_stream("openai-lf", "\n", bom=False, keepalive=False),
    _openai_stream("openai-crlf-bom-keepalive", "\r\n", bom=True, keepalive=True),
    _openai_stream("openai-cr-keepalive", "\r", bom=False, keepalive=True),
    _featureful_stream(),
]


@pytest.mark.parametrize("stream", REAL_STREAMS, ids=lambda s: s.name)
def test_real_stream_whole_and_byte_by_byte(stream: RealStream) -> None:
    assert parse_chunks([stream.raw]) == (stream.events, stream.comments)
    one_byte = [stream.raw[i : i + 1] for i in range(len(stream.raw))]
    assert parse_chunks(one_byte) == (stream.events, stream.comments)


@SSE_SETTINGS
@given(data=st.data())
def test_real_stream_arbitrary_cuts(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from(REAL_STREAMS), label="stream")
    cuts = data.draw(
        st.lists(st.integers(0, len(stream.raw)), max_size=40), label="cuts"
    )
    assert parse_chunks(split_at(stream.raw, cuts)) == (stream.events, stream.comments)


# --- (3) every two-piece cut, deterministically ------------------------------------


@pytest.mark.parametrize("stream", REAL_STREAMS, ids=lambda s: s.name)
def test_real_stream_every_single_cut(stream: RealStream) -> None:
    expected = (stream.events, stream.comments)
    for cut in range(len(stream.raw) + 1):
        got = parse_chunks([stream.raw[:cut], stream.raw[cut:]])
        assert got == expected, (
            f"cut at {cut}: {stream.raw[max(0, cut - 8) : cut + 8]!r}"
        )
