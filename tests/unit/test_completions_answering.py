"""CompletionDecoder.answering: what counts as the first token. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tornado_sse.completions import CompletionDecoder


def data(delta: dict[str, Any]) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


@pytest.mark.parametrize("delta,answering", [
    ({"role": "assistant"}, False),
    ({"role": "assistant", "content": ""}, False),
    ({"content": None, "refusal": None}, False),
    ({}, False),
    ({"content": "hi"}, True),
    ({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}, True),
    ({"refusal": "no"}, True),
    ({"reasoning_content": "thinking"}, True),
])
def test_answering(delta: dict[str, Any], answering: bool) -> None:
    decoder = CompletionDecoder()
    decoder.feed(data(delta))
    assert decoder.answering is answering


def test_usage_chunk_and_done_do_not_start_an_answer() -> None:
    decoder = CompletionDecoder()
    decoder.feed(json.dumps({"choices": [], "usage": {"total_tokens": 1}}))
    decoder.feed("[DONE]")
    assert not decoder.answering
