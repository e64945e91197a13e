"""What ``/v1/chat/completions`` sends back, in OpenAI's formats. Pure: no I/O.

* Streaming: each upstream chunk object, re-encoded as one ``data:`` event by our
  encoder (never the upstream's bytes), then ``data: [DONE]``.
* Non-streaming: the chunks aggregated into one ``chat.completion`` object.
* Errors: ``{"error": {"message", "type", "param", "code"}}``, as an HTTP body
  before the response started and as an in-band ``data:`` event after.
"""

from __future__ import annotations

from typing import Any

from .channel import json_data
from .errors import SAFE_MESSAGES, StreamError
from .sse import encode_event

DONE = encode_event("[DONE]")

# HTTP status for a stream error that happens before the first byte went out.
# The upstream's problems are a bad gateway (502/504), never 401: the client's
# own token was fine, it is our key the upstream refused.
_STREAM_ERROR_STATUS = {
    "upstream_connect": 502,
    "upstream_timeout": 504,
    "upstream_idle": 504,
    "upstream_total": 504,
    "upstream_auth": 502,
    "upstream_rate_limited": 429,
    "upstream_error": 502,
    "upstream_disconnected": 502,
    "upstream_protocol": 502,
    "overloaded": 503,
    "slow_client": 500,
    "internal": 500,
}

SHUTDOWN_MESSAGE = "The server is shutting down; the answer was cut off."


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": None, "code": code}}


def stream_error_status(error: StreamError) -> int:
    return _STREAM_ERROR_STATUS.get(error.code, 502)


def stream_error_body(error: StreamError) -> dict[str, Any]:
    # The safe message only: the upstream's words stay in the log.
    return error_body(stream_error_status(error), error.code, error.message)


def shutdown_body() -> dict[str, Any]:
    return error_body(503, "shutdown", SHUTDOWN_MESSAGE)


def encode_chunk(obj: dict[str, Any]) -> bytes:
    return encode_event(json_data(obj))


def client_chunk(chunk: dict[str, Any], include_usage: bool) -> dict[str, Any] | None:
    """The chunk as this client should see it, or ``None`` to send nothing.

    We always ask the upstream for usage; a client that did not ask gets neither
    the usage-only chunk nor the ``"usage": null`` the other chunks then carry.
    """
    if include_usage or "usage" not in chunk:
        return chunk
    if not chunk.get("choices"):
        return None  # the usage-only chunk
    return {k: v for k, v in chunk.items() if k != "usage"}


_TOP_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


class ChunkAggregator:
    """Folds a stream's chunks into the ``chat.completion`` a non-streaming call returns.

    Strings in a delta are concatenated (``content``, ``refusal``, and extensions
    such as ``reasoning_content``); ``tool_calls`` are merged by their ``index``
    with ``function.arguments`` concatenated; logprobs lists are extended.
    """

    def __init__(self) -> None:
        self.top: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None
        self._choices: dict[int, _Choice] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        for name in _TOP_FIELDS:
            if chunk.get(name) is not None and name not in self.top:
                self.top[name] = chunk[name]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if not isinstance(index, int):
                index = 0
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = _Choice(index)
            state.add(choice)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.top.get("id", ""),
            "object": "chat.completion",
            "created": self.top.get("created", 0),
            "model": self.top.get("model", ""),
            "choices": [c.result() for _, c in sorted(self._choices.items())],
        }
        for name in ("system_fingerprint", "service_tier"):
            if name in self.top:
                out[name] = self.top[name]
        if self.usage is not None:
            out["usage"] = self.usage
        return out


class _Choice:
    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.texts: dict[str, list[str]] = {}
        self.other: dict[str, Any] = {}
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.logprobs: dict[str, Any] | None = None

    def add(self, choice: dict[str, Any]) -> None:
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        self._add_logprobs(choice.get("logprobs"))
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        for key, value in delta.items():
            if key == "role":
                if isinstance(value, str) and value:
                    self.role = value
            elif key == "tool_calls":
                if isinstance(value, list):
                    for call in value:
                        if isinstance(call, dict):
                            self._add_tool_call(call)
            elif key == "function_call":
                if isinstance(value, dict):
                    self.function_call = _merge_call(self.function_call or {}, value)
            elif isinstance(value, str):
                self.texts.setdefault(key, []).append(value)
            elif value is not None:
                self.other[key] = value

    def _add_tool_call(self, call: dict[str, Any]) -> None:
        index = call.get("index", len(self.tool_calls))
        if not isinstance(index, int):
            index = len(self.tool_calls)
        self.tool_calls[index] = _merge_call(self.tool_calls.get(index, {}), call)

    def _add_logprobs(self, logprobs: Any) -> None:
        if not isinstance(logprobs, dict):
            return
        if self.logprobs is None:
            self.logprobs = {}
        for key, value in logprobs.items():
            if isinstance(value, list):
                self.logprobs.setdefault(key, []).extend(value)

    def result(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role}
        content = self.texts.pop("content", None)
        message["content"] = "".join(content) if content is not None else (
            None if self.tool_calls or self.function_call else "")
        refusal = self.texts.pop("refusal", None)
        message["refusal"] = "".join(refusal) if refusal is not None else None
        for key, parts in self.texts.items():
            message[key] = "".join(parts)
        message.update(self.other)
        if self.tool_calls:
            calls = []
            for _, call in sorted(self.tool_calls.items()):
                call = dict(call)
                call.pop("index", None)
                calls.append(call)
            message["tool_calls"] = calls
        if self.function_call is not None:
            message["function_call"] = self.function_call
        return {"index": self.index, "message": message, "logprobs": self.logprobs,
                "finish_reason": self.finish_reason}


def _merge_call(into: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Merge one streamed fragment of a tool/function call: strings that arrive in
    pieces (``arguments``, sometimes ``name``) are concatenated; ids, types and the
    like are kept from the first fragment that has them."""
    out = dict(into)
    for key, value in part.items():
        if isinstance(value, dict):
            out[key] = _merge_call(out.get(key) or {}, value)
        elif key in ("arguments", "name") and isinstance(value, str):
            out[key] = out.get(key, "") + value
        elif value is not None and key not in out:
            out[key] = value
    return out


__all__ = [
    "DONE",
    "SAFE_MESSAGES",
    "ChunkAggregator",
    "client_chunk",
    "encode_chunk",
    "error_body",
    "shutdown_body",
    "stream_error_body",
    "stream_error_status",
]
