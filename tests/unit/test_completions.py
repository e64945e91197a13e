"""OpenAI chunk semantics (pure)."""

from __future__ import annotations

import json

import pytest

from tornado_sse.completions import CompletionDecoder, end_reason_for
from tornado_sse.errors import StreamError


def chunk(delta: dict[str, object], finish: str | None = None) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_content_deltas_and_done() -> None:
    d = CompletionDecoder()
    assert d.feed(chunk({"role": "assistant", "content": ""})) is None  # role-only
    assert d.feed(chunk({"content": "你好"})) == "你好"
    assert d.feed(chunk({}, "stop")) is None
    assert d.finish_reason == "stop" and not d.done and d.complete
    assert d.feed("[DONE]") is None
    assert d.done
    assert d.feed(chunk({"content": "late"})) is None  # nothing after [DONE] counts


def test_empty_choices_and_usage_chunk() -> None:
    d = CompletionDecoder()
    usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert d.feed(json.dumps({"choices": [], "usage": usage})) is None
    assert d.usage == usage
    assert d.feed(json.dumps({"id": "x"})) is None


def test_in_band_error_is_typed_and_keeps_text_out_of_message() -> None:
    d = CompletionDecoder()
    with pytest.raises(StreamError) as info:
        d.feed(json.dumps({"error": {"message": "secret upstream words", "type": "server_error"}}))
    assert info.value.code == "upstream_error"
    assert "secret" not in info.value.message
    assert "secret upstream words" in info.value.detail


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '"str"'])
def test_unparseable_is_protocol_error(data: str) -> None:
    with pytest.raises(StreamError) as info:
        CompletionDecoder().feed(data)
    assert info.value.code == "upstream_protocol"


@pytest.mark.parametrize("finish,reason", [("stop", "stop"), ("length", "length"),
                                           ("content_filter", "content_filter"),
                                           ("tool_calls", "stop"), (None, "stop")])
def test_end_reasons(finish: str | None, reason: str) -> None:
    assert end_reason_for(finish) == reason
