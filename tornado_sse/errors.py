"""Typed errors that end a stream or refuse a request.

Each carries the attributes a handler needs to answer without parsing strings:
``code`` (a stable identifier from the HTTP contract), a *safe* ``message`` that may
be shown to a browser, and, for stream errors, whether retrying could help. The
upstream's own words travel only in ``detail``, which goes to the (redacted) log.
"""

from __future__ import annotations

# Safe, human-readable texts. They never contain upstream text, URLs or keys,
# so a handler may send them to any client verbatim.
SAFE_MESSAGES: dict[str, str] = {
    "upstream_connect": "Could not reach the AI service.",
    "upstream_timeout": "The AI service did not start answering in time.",
    "upstream_idle": "The AI service stopped sending data.",
    "upstream_total": "The answer took too long and was cut off.",
    "upstream_auth": "The AI service rejected this server's credentials.",
    "upstream_rate_limited": "The AI service is rate limiting requests; try again shortly.",
    "upstream_error": "The AI service returned an error.",
    "upstream_disconnected": "The connection to the AI service was lost mid-answer.",
    "upstream_protocol": "The AI service sent a response that could not be read.",
    "overloaded": "The server is at capacity; try again shortly.",
    "slow_client": "The connection could not keep up with the stream.",
    "internal": "Internal server error.",
}

RETRYABLE: frozenset[str] = frozenset(
    {
        "upstream_connect",
        "upstream_timeout",
        "upstream_idle",
        "upstream_rate_limited",
        "upstream_error",
        "upstream_disconnected",
        "overloaded",
        "slow_client",
    }
)


class StreamError(Exception):
    """Ends a running stream with an ``error`` event, then ``end`` (reason ``error``)."""

    def __init__(self, code: str, detail: str = "", *, status: int | None = None) -> None:
        if code not in SAFE_MESSAGES:
            raise ValueError(f"unknown stream error code {code!r}")
        super().__init__(code)
        self.code = code
        self.detail = detail  # for the log only; may hold upstream text (redact before logging)
        self.status = status  # upstream HTTP status, when there was one

    @property
    def message(self) -> str:
        return SAFE_MESSAGES[self.code]

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE

    def to_event_data(self) -> dict[str, object]:
        return {"msg": self.message, "code": self.code, "retryable": self.retryable}

    def __repr__(self) -> str:
        return f"StreamError(code={self.code!r}, status={self.status!r})"


class RequestError(Exception):
    """Refuses a request before any stream starts: plain HTTP status + JSON body."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def to_json(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


class Overloaded(RequestError):
    """At the stream cap: answered at once with 503 + Retry-After, never queued."""

    def __init__(self, limit: int, retry_after: int = 1) -> None:
        super().__init__(
            503, "overloaded", SAFE_MESSAGES["overloaded"], retry_after=retry_after
        )
        self.limit = limit


class ShuttingDown(RequestError):
    """The server is draining for a restart: new streams get 503 + Retry-After."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(503, "shutting_down", "The server is restarting; try again shortly.",
                         retry_after=retry_after)
