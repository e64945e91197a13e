"""Input validation (pure): every bad input names its problem."""

from __future__ import annotations

import json

import pytest

from tornado_sse import chat_request
from tornado_sse.config import Settings
from tornado_sse.errors import RequestError

S = Settings(upstream_url="http://127.0.0.1:1/v1", max_question_bytes=100, max_body_bytes=1000)


def code_of(body: bytes) -> tuple[int, str]:
    with pytest.raises(RequestError) as info:
        chat_request.from_json_body(body, S)
    return info.value.status, info.value.code


@pytest.mark.parametrize("body,expected", [
    (b"{bad", (400, "bad_json")),
    (b"[1]", (400, "bad_json")),
    (b'{"question": "\xff"}', (400, "bad_utf8")),
    (b'{"question": "\\ud800"}', (400, "bad_utf8")),
    (b"{}", (400, "missing_question")),
    (b'{"question": "   "}', (400, "empty_question")),
    (b'{"question": 5}', (400, "bad_question")),
    (json.dumps({"question": "x" * 101}).encode(), (400, "question_too_long")),
    (json.dumps({"question": "字" * 34}).encode(), (400, "question_too_long")),  # 102 bytes
    (b'{"messages": []}', (400, "bad_messages")),
    (b'{"messages": "hi"}', (400, "bad_messages")),
    (b'{"messages": [{"role": "wizard", "content": "x"}]}', (400, "bad_messages")),
    (b'{"messages": [{"role": "user", "content": 1}]}', (400, "bad_messages")),
    (b'{"messages": [1]}', (400, "bad_messages")),
    (b'{"question": "x", "temperature": 9}', (400, "bad_temperature")),
    (b'{"question": "x", "temperature": "hot"}', (400, "bad_temperature")),
    (b'{"question": "x", "model": ""}', (400, "bad_model")),
    (b'{"question": "' + b"x" * 2000 + b'"}', (413, "body_too_large")),
])
def test_bad_bodies(body: bytes, expected: tuple[int, str]) -> None:
    assert code_of(body) == expected


def test_good_bodies() -> None:
    r = chat_request.from_json_body(b'{"question": "hi", "temperature": 0.2, "model": "m"}', S)
    assert r.messages == [{"role": "user", "content": "hi"}]
    assert (r.model, r.temperature) == ("m", 0.2)
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u", "extra": 1}]
    r = chat_request.from_json_body(json.dumps({"messages": msgs}).encode(), S)
    assert r.messages == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


def test_question_limit_is_inclusive() -> None:
    assert chat_request.from_question("x" * 100, S).messages[0]["content"] == "x" * 100
