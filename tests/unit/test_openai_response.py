"""OpenAI response formats: usage stripping, aggregation, error shapes. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from tornado_sse.errors import StreamError
from tornado_sse.openai_response import (
    DONE,
    ChunkAggregator,
    client_chunk,
    encode_chunk,
    error_body,
    stream_error_body,
    stream_error_status,
)
from tornado_sse.sse import SSEParser


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          logprobs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    obj: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
                           "choices": [choice]}
    obj.update(extra)
    return obj


def test_chunk_encoding_is_one_event_that_parses_back() -> None:
    obj = chunk({"content": "a\nb\r\n\u2028 你好 data: x\n\nevent: evil"})
    raw = encode_chunk(obj)
    assert raw.startswith(b"data: {") and raw.endswith(b"}\n\n") and raw.count(b"\n") == 2
    assert "你好".encode() in raw
    events = list(SSEParser().feed(raw))
    assert len(events) == 1 and events[0].event == "message"
    assert DONE == b"data: [DONE]\n\n"


def test_usage_is_stripped_for_clients_that_did_not_ask() -> None:
    with_null = chunk({"content": "x"}, usage=None)
    usage_only = {"id": "c1", "choices": [], "usage": {"total_tokens": 3}}
    assert client_chunk(with_null, include_usage=True) is with_null
    assert client_chunk(usage_only, include_usage=True) is usage_only
    stripped = client_chunk(with_null, include_usage=False)
    assert stripped is not None and "usage" not in stripped and stripped["choices"] == with_null["choices"]
    assert "usage" in with_null  # the original is not mutated
    assert client_chunk(usage_only, include_usage=False) is None
    # Usage in a chunk that also has choices: the choices still go out.
    both = chunk({}, "stop", usage={"total_tokens": 3})
    out = client_chunk(both, include_usage=False)
    assert out is not None and "usage" not in out and out["choices"][0]["finish_reason"] == "stop"
    plain = chunk({"content": "x"})
    assert client_chunk(plain, include_usage=False) is plain


def test_aggregates_text_and_usage() -> None:
    agg = ChunkAggregator()
    agg.add(chunk({"role": "assistant", "content": ""}, system_fingerprint="fp"))
    for piece in ["你", "好", "!"]:
        agg.add(chunk({"content": piece}))
    agg.add(chunk({}, "length"))
    agg.add({"id": "c1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 3,
                                                  "total_tokens": 4}})
    assert agg.result() == {
        "id": "c1", "object": "chat.completion", "created": 7, "model": "m",
        "system_fingerprint": "fp",
        "choices": [{"index": 0, "finish_reason": "length", "logprobs": None,
                     "message": {"role": "assistant", "content": "你好!", "refusal": None}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
    }


def test_aggregates_tool_calls_by_index() -> None:
    agg = ChunkAggregator()
    agg.add(chunk({"role": "assistant", "content": None}))
    agg.add(chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}))
    agg.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}))
    agg.add(chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                   "function": {"name": "get_time", "arguments": "{}"}}]}))
    agg.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "巴黎"}'}}]}))
    agg.add(chunk({}, "tool_calls"))
    choice = agg.result()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "巴黎"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]


def test_aggregates_extensions_refusal_and_logprobs() -> None:
    agg = ChunkAggregator()
    agg.add(chunk({"reasoning_content": "think "}))
    agg.add(chunk({"reasoning_content": "more", "refusal": "no"},
                  logprobs={"content": [{"token": "a"}]}))
    agg.add(chunk({"content": "x"}, logprobs={"content": [{"token": "b"}]}))
    choice = agg.result()["choices"][0]
    assert choice["message"]["reasoning_content"] == "think more"
    assert choice["message"]["refusal"] == "no"
    assert choice["message"]["content"] == "x"
    assert choice["logprobs"] == {"content": [{"token": "a"}, {"token": "b"}]}


def test_empty_stream_aggregates_to_an_empty_answer() -> None:
    result = ChunkAggregator().result()
    assert result["object"] == "chat.completion" and result["choices"] == []


def test_junk_chunks_do_not_break_aggregation() -> None:
    agg = ChunkAggregator()
    for junk in [{"choices": "x"}, {"choices": [1, None]}, {"choices": [{"index": "z", "delta": 3}]},
                 {"choices": [{"delta": {"tool_calls": ["x", {"index": "q"}]}}]}]:
        agg.add(junk)
    assert agg.result()["object"] == "chat.completion"


def test_error_shapes() -> None:
    assert error_body(401, "invalid_token", "no") == {
        "error": {"message": "no", "type": "authentication_error", "param": None, "code": "invalid_token"}}
    assert error_body(429, "rate_limited", "m")["error"]["type"] == "rate_limit_error"
    assert error_body(400, "bad_json", "m")["error"]["type"] == "invalid_request_error"
    err = StreamError("upstream_auth", "upstream said: key sk-SECRET is wrong", status=401)
    assert stream_error_status(err) == 502  # our key, not the client's token
    body = stream_error_body(err)
    assert body["error"]["code"] == "upstream_auth" and "SECRET" not in str(body)
    assert body["error"]["type"] == "server_error"


@pytest.mark.parametrize("code,status", [("upstream_timeout", 504), ("upstream_idle", 504),
                                         ("upstream_rate_limited", 429), ("overloaded", 503),
                                         ("upstream_connect", 502)])
def test_stream_error_status(code: str, status: int) -> None:
    assert stream_error_status(StreamError(code)) == status
