"""Shared handler plumbing: JSON errors without tracebacks."""

from __future__ import annotations

import logging
from typing import Any

from tornado.web import HTTPError, RequestHandler

from tornado_sse.errors import RequestError

log = logging.getLogger("tornado_sse.handlers")


class JSONErrorHandler(RequestHandler):
    """Every error leaves as ``{"error": {"code", "message"}}``, never a traceback."""

    def send_request_error(self, error: RequestError) -> None:
        self.clear()
        self.set_status(error.status)
        if error.retry_after is not None:
            self.set_header("Retry-After", str(error.retry_after))
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(error.to_json())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, RequestError):
            self.send_request_error(exc)
            return
        if (isinstance(exc, HTTPError) and exc.log_message and status_code < 500) or status_code < 500:
            message = self._reason
        else:
            message = "Internal server error."
        code = "internal" if status_code >= 500 else f"http_{status_code}"
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish({"error": {"code": code, "message": message}})

    def stream_owner(self) -> str | None:
        """Who this request acts for, recorded on the streams it starts; only the
        same identity may resume or stop them. ``None`` while there are no client
        tokens. Return a non-secret identity (a token's name or digest): stores,
        including Redis, keep it."""
        return None

    def check_xsrf_cookie(self) -> None:
        # An API called by EventSource/fetch; authentication is by token, not cookie forms.
        pass
