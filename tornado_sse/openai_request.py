"""Validation of ``POST /v1/chat/completions`` bodies. Pure: bytes in, a
:class:`CompletionRequest` or a :class:`~tornado_sse.errors.RequestError` out.

The OpenAI request format is wider than ``/ai/streamChat``'s: content may be a list
of parts (text, images), assistant messages may carry ``tool_calls`` with null
content, and there are many sampling and tool parameters. We check what we must
(messages shape, sizes, the parameters we enforce limits on) and pass the rest
through unchanged, so new SDK parameters keep working without a release.

The upstream is always asked to stream: a non-streaming client gets the
aggregated answer (see :mod:`tornado_sse.openai_response`), which keeps one code
path for timeouts, cancellation, limits and usage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .chat_request import (
    ROLES,
    _reject_lone_surrogates,
    check_model,
    check_temperature,
    parse_json_object,
)
from .config import Settings
from .errors import RequestError

# "function" is the legacy role for function results; still accepted by OpenAI.
OPENAI_ROLES = ROLES | {"function"}

# Fields we set ourselves; the client's values are read, never forwarded as is.
_OWN_FIELDS = frozenset({"messages", "model", "stream", "stream_options", "temperature"})


@dataclass(frozen=True)
class CompletionRequest:
    upstream: dict[str, Any]  # the body for the upstream, without stream/stream_options
    stream: bool
    include_usage: bool  # the client asked for the usage chunk

    def upstream_body(self, ask_usage: bool) -> bytes:
        """The JSON the upstream receives: always ``stream: true``.

        ``ask_usage``: request the usage chunk whatever the client said (we
        record usage; :func:`~tornado_sse.openai_response.client_chunk` strips
        it again for a client that did not ask).
        """
        body = dict(self.upstream)
        body["stream"] = True
        options = dict(self.upstream.get("stream_options") or {})
        body.pop("stream_options", None)
        if ask_usage or self.include_usage:
            options["include_usage"] = True
        if options:
            body["stream_options"] = options
        # ensure_ascii: any unpaired surrogate in pass-through fields becomes a
        # valid \uXXXX escape instead of an encoding error.
        return json.dumps(body, separators=(",", ":")).encode()


def _bad(code: str, message: str) -> RequestError:
    return RequestError(400, code, message)


def _text_size(content: Any, where: str) -> int:
    """UTF-8 bytes of the text in ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        _reject_lone_surrogates(content, where)
        return len(content.encode("utf-8"))
    size = 0
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _bad("bad_messages", f"{where}[{j}] must be an object with a string 'type'.")
        text = part.get("text")
        if text is not None:
            if not isinstance(text, str):
                raise _bad("bad_messages", f"{where}[{j}].text must be a string.")
            _reject_lone_surrogates(text, f"{where}[{j}].text")
            size += len(text.encode("utf-8"))
    return size


def check_openai_messages(messages: Any, settings: Settings) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("bad_messages", "'messages' must be a non-empty list.")
    if len(messages) > settings.max_messages:
        raise _bad("bad_messages", f"At most {settings.max_messages} messages are allowed.")
    total = 0
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad("bad_messages", f"{where} must be an object.")
        role = message.get("role")
        if role not in OPENAI_ROLES:
            raise _bad("bad_messages", f"{where}.role must be one of {sorted(OPENAI_ROLES)}.")
        content = message.get("content")
        if content is None:
            # An assistant turn that only called tools has no content.
            if role != "assistant":
                raise _bad("bad_messages", f"{where}.content is required.")
            continue
        if not isinstance(content, (str, list)):
            raise _bad("bad_messages", f"{where}.content must be a string or a list of parts.")
        total += _text_size(content, f"{where}.content")
    if total > settings.max_question_bytes * 8:
        raise _bad("messages_too_long", "The conversation is too long.")
    return messages


def parse_completion_request(body: bytes, settings: Settings) -> CompletionRequest:
    obj = parse_json_object(body, settings)  # 413 / bad_json / bad_utf8
    messages = check_openai_messages(obj.get("messages"), settings)
    model = check_model(obj.get("model")) or settings.model
    temperature = check_temperature(obj.get("temperature"), settings)
    stream = obj.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("bad_stream", "'stream' must be a boolean.")
    options = obj.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("bad_stream_options", "'stream_options' must be an object.")
    include_usage = bool(stream and options and options.get("include_usage") is True)
    n = obj.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        # Several choices multiply the cost behind our key; the relay and
        # usage accounting assume one.
        raise _bad("bad_n", "Only n=1 is supported.")
    upstream = {k: v for k, v in obj.items() if k not in _OWN_FIELDS}
    upstream["model"] = model
    upstream["messages"] = messages
    if temperature is not None:
        upstream["temperature"] = temperature
    if stream and options:
        upstream["stream_options"] = {k: v for k, v in options.items() if k != "include_usage"}
    return CompletionRequest(upstream=upstream, stream=bool(stream), include_usage=include_usage)
