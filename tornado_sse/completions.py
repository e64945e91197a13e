"""OpenAI chat-completion chunk semantics, on parsed SSE events. Pure: no I/O.

Turns each upstream ``data:`` payload into at most one text delta and keeps what
the stream has said about its end: ``[DONE]``, ``finish_reason``, ``usage``.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import StreamError

# finish_reason values that map to an end reason of their own; anything else
# the upstream may invent (tool_calls, function_call, ...) ends as "stop".
_END_REASONS = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


def end_reason_for(finish_reason: str | None) -> str:
    return _END_REASONS.get(finish_reason or "stop", "stop")


class CompletionDecoder:
    """Feed it the ``data`` of each upstream event, in order."""

    __slots__ = ("answering", "chunks", "done", "finish_reason", "last_chunk", "usage")

    def __init__(self) -> None:
        # True from the first delta that carries more than a role: text, but
        # also tool-call arguments, a refusal or reasoning text, so a stream
        # that answers with those counts as started (first-token timeout).
        self.answering = False
        self.done = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.last_chunk: dict[str, Any] | None = None
        self.chunks = 0

    def feed(self, data: str) -> str | None:
        """Return the text delta carried by this event, or ``None``.

        Raises :class:`StreamError` ``upstream_error`` for an in-band error
        object and ``upstream_protocol`` for a payload that is not a JSON object.
        """
        if self.done:
            return None  # nothing after [DONE] counts
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk = json.loads(data)
        except ValueError:
            raise StreamError("upstream_protocol", f"unparseable chunk ({len(data)} chars)") from None
        if not isinstance(chunk, dict):
            raise StreamError("upstream_protocol", "chunk is not a JSON object")
        if chunk.get("error"):
            # In-band error: the upstream's text goes to the log only.
            raise StreamError("upstream_error", "in-band error: " + json.dumps(chunk["error"])[:2000])
        self.chunks += 1
        self.last_chunk = chunk
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return None  # e.g. the usage-only chunk
        choice = choices[0]
        if not isinstance(choice, dict):
            return None
        finish = choice.get("finish_reason")
        if finish:
            self.finish_reason = str(finish)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return None
        content = delta.get("content")
        # Role-only and empty deltas carry nothing to show.
        if isinstance(content, str) and content:
            self.answering = True
            return content
        if not self.answering:
            self.answering = any(value for key, value in delta.items() if key != "role")
        return None

    @property
    def complete(self) -> bool:
        """True when the upstream said how the answer ended."""
        return self.done or self.finish_reason is not None
