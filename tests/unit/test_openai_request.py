"""Validation of /v1/chat/completions bodies and the body sent upstream. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tornado_sse.config import Settings
from tornado_sse.errors import RequestError
from tornado_sse.openai_request import parse_completion_request

S = Settings(max_streams=10, model="default-model", max_question_bytes=100, max_body_bytes=4000,
             max_messages=5)
USER = [{"role": "user", "content": "hi"}]


def parse(obj: Any, settings: Settings = S) -> Any:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return parse_completion_request(raw, settings)


def upstream(obj: Any, ask_usage: bool = True) -> dict[str, Any]:
    return json.loads(parse(obj).upstream_body(ask_usage))  # type: ignore[no-any-return]


def test_minimal_request_streams_upstream_with_usage_and_default_model() -> None:
    req = parse({"messages": USER})
    assert req.stream is False and req.include_usage is False
    body = upstream({"messages": USER})
    assert body == {"model": "default-model", "messages": USER, "stream": True,
                    "stream_options": {"include_usage": True}}
    assert "stream_options" not in upstream({"messages": USER}, ask_usage=False)


def test_client_usage_request_is_honoured_even_when_we_do_not_ask() -> None:
    obj = {"messages": USER, "stream": True, "stream_options": {"include_usage": True, "x": 1}}
    req = parse(obj)
    assert req.stream and req.include_usage
    assert json.loads(req.upstream_body(False))["stream_options"] == {"x": 1, "include_usage": True}
    # Without stream, stream_options mean nothing: non-streaming answers always carry usage.
    assert parse({"messages": USER, "stream_options": {"include_usage": True}}).include_usage is False


def test_parameters_pass_through_and_ours_are_ours() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    obj = {"messages": USER, "model": "m", "temperature": 1, "top_p": 0.5, "max_tokens": 10,
           "tools": tools, "tool_choice": "auto", "seed": 1, "user": "u", "stream": True,
           "future_param": {"a": [1]}, "n": 1}
    body = upstream(obj)
    for key in ("top_p", "max_tokens", "tools", "tool_choice", "seed", "user", "future_param", "n"):
        assert body[key] == obj[key]
    assert body["model"] == "m" and body["temperature"] == 1.0 and body["stream"] is True


def test_openai_message_shapes_are_accepted() -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:..."}}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "user", "content": "", "name": "bob"},
    ]
    assert upstream({"messages": messages})["messages"] == messages


def test_unpaired_surrogates_outside_messages_are_escaped_not_fatal() -> None:
    raw = b'{"messages": [{"role": "user", "content": "hi"}], "user": "\\ud800"}'
    body = parse(raw).upstream_body(True)
    assert b"\\ud800" in body


@pytest.mark.parametrize("obj,status,code", [
    (b"{", 400, "bad_json"),
    (b"[]", 400, "bad_json"),
    (b"\xff", 400, "bad_utf8"),
    (b" " * 4001, 413, "body_too_large"),
    ({}, 400, "bad_messages"),
    ({"messages": []}, 400, "bad_messages"),
    ({"messages": "hi"}, 400, "bad_messages"),
    ({"messages": [USER[0]] * 6}, 400, "bad_messages"),
    ({"messages": ["hi"]}, 400, "bad_messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "bad_messages"),
    ({"messages": [{"role": "user"}]}, 400, "bad_messages"),
    ({"messages": [{"role": "user", "content": None}]}, 400, "bad_messages"),
    ({"messages": [{"role": "user", "content": 3}]}, 400, "bad_messages"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, 400, "bad_messages"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, 400, "bad_messages"),
    ({"messages": [{"role": "user", "content": "x" * 801}]}, 400, "messages_too_long"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 801}]}]}, 400,
     "messages_too_long"),
    (b'{"messages": [{"role": "user", "content": "\\udc00"}]}', 400, "bad_utf8"),
    ({"messages": USER, "model": ""}, 400, "bad_model"),
    ({"messages": USER, "temperature": 9}, 400, "bad_temperature"),
    ({"messages": USER, "temperature": "hot"}, 400, "bad_temperature"),
    ({"messages": USER, "stream": "yes"}, 400, "bad_stream"),
    ({"messages": USER, "stream": True, "stream_options": "x"}, 400, "bad_stream_options"),
    ({"messages": USER, "n": 2}, 400, "bad_n"),
    ({"messages": USER, "n": True}, 400, "bad_n"),
])
def test_bad_requests(obj: Any, status: int, code: str) -> None:
    with pytest.raises(RequestError) as info:
        parse(obj)
    assert (info.value.status, info.value.code) == (status, code)
