"""Validation of what a client asks for. Pure: bytes and strings in, a
:class:`ChatRequest` or a :class:`RequestError` (400/413) out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .errors import RequestError

ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    model: str | None = None
    temperature: float | None = None


def _bad(code: str, message: str, status: int = 400) -> RequestError:
    return RequestError(status, code, message)


def decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("bad_utf8", f"{what} is not valid UTF-8") from None


def check_question(question: str | None, settings: Settings) -> str:
    if question is None:
        raise _bad("missing_question", "Missing 'question'.")
    if not isinstance(question, str):
        raise _bad("bad_question", "'question' must be a string.")
    if not question.strip():
        raise _bad("empty_question", "'question' is empty.")
    size = len(question.encode("utf-8", "surrogatepass"))
    if size > settings.max_question_bytes:
        raise _bad("question_too_long",
                   f"'question' is {size} bytes; the limit is {settings.max_question_bytes}.")
    _reject_lone_surrogates(question, "'question'")
    return question


def _reject_lone_surrogates(text: str, what: str) -> None:
    # JSON can smuggle "\ud800", which is not encodable UTF-8 for the upstream.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("bad_utf8", f"{what} contains an unpaired surrogate.") from None


def from_question(question: str | None, settings: Settings) -> ChatRequest:
    """The seed's GET form: one user question."""
    q = check_question(question, settings)
    return ChatRequest(messages=[{"role": "user", "content": q}])


def check_messages(messages: Any, settings: Settings) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("bad_messages", "'messages' must be a non-empty list.")
    if len(messages) > settings.max_messages:
        raise _bad("bad_messages", f"At most {settings.max_messages} messages are allowed.")
    out: list[dict[str, Any]] = []
    total = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad("bad_messages", f"messages[{i}] must be an object.")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _bad("bad_messages", f"messages[{i}].role must be one of {sorted(ROLES)}.")
        if not isinstance(content, str):
            raise _bad("bad_messages", f"messages[{i}].content must be a string.")
        _reject_lone_surrogates(content, f"messages[{i}].content")
        total += len(content.encode("utf-8"))
        out.append({"role": role, "content": content})
    if total > settings.max_question_bytes * 8:
        raise _bad("messages_too_long", "The conversation is too long.")
    last = out[-1]
    if last["role"] == "user":
        check_question(last["content"], settings)
    return out


def check_temperature(value: Any, settings: Settings) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad("bad_temperature", "'temperature' must be a number.")
    if not settings.temperature_min <= value <= settings.temperature_max:
        raise _bad("bad_temperature",
                   f"'temperature' must be within [{settings.temperature_min}, "
                   f"{settings.temperature_max}].")
    return float(value)


def check_model(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise _bad("bad_model", "'model' must be a non-empty string of at most 200 characters.")
    return value


def parse_json_object(body: bytes, settings: Settings) -> dict[str, Any]:
    if len(body) > settings.max_body_bytes:
        raise _bad("body_too_large", f"The body is over {settings.max_body_bytes} bytes.", 413)
    text = decode_utf8(body, "The body")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad("bad_json", f"The body is not valid JSON ({exc.msg}).") from None
    if not isinstance(obj, dict):
        raise _bad("bad_json", "The body must be a JSON object.")
    return obj


def from_json_body(body: bytes, settings: Settings) -> ChatRequest:
    """The POST form: ``{"question": ...}`` or ``{"messages": [...]}``."""
    obj = parse_json_object(body, settings)
    if "messages" in obj:
        messages = check_messages(obj["messages"], settings)
    else:
        messages = [{"role": "user", "content": check_question(obj.get("question"), settings)}]
    return ChatRequest(
        messages=messages,
        model=check_model(obj.get("model")),
        temperature=check_temperature(obj.get("temperature"), settings),
    )
