"""Shared handler plumbing: JSON errors without tracebacks, logs without secrets, CORS."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from tornado.web import HTTPError, RequestHandler

from tornado_sse.cors import CorsPolicy
from tornado_sse.errors import RequestError

log = logging.getLogger("tornado_sse.handlers")

def request_summary(handler: RequestHandler) -> str:
    """The request, for error log lines: the path only, never the query string,
    which holds question text and, for EventSource clients, a client token."""
    request = handler.request
    return f"{request.method} {request.path} ({request.remote_ip})"

# The per-request access log is tornado_sse.access_log.request_logger: path only,
# never the query string (question text, tokens).


class JSONErrorHandler(RequestHandler):
    """Every error leaves as ``{"error": {"code", "message"}}``, never a traceback.

    Also: CORS headers on every response (errors included, so a page on another
    origin can read them) and preflight answers, from the ``cors`` policy in the
    application settings.
    """

    # Set true once this request serves a stream: its access-log line is then
    # written when the stream ends (tornado_sse.access_log), not per request.
    logs_own_access = False

    def set_default_headers(self) -> None:
        # Called from RequestHandler.__init__ (before initialize) and on clear().
        cors: CorsPolicy | None = self.application.settings.get("cors")
        if cors is not None:
            for name, value in cors.response_headers(self.request.headers.get("Origin")).items():
                self.set_header(name, value)

    def options(self, *args: str) -> None:
        """CORS preflight: 204 with the grants, or 403 for an origin not allowed."""
        origin = self.request.headers.get("Origin")
        if origin is None or "Access-Control-Request-Method" not in self.request.headers:
            self.set_status(204)  # not a preflight: nothing to grant
            self.finish()
            return
        cors: CorsPolicy | None = self.application.settings.get("cors")
        headers = None
        if cors is not None:
            headers = cors.preflight_headers(
                origin,
                self.request.headers.get("Access-Control-Request-Method"),
                self.request.headers.get("Access-Control-Request-Headers"))
        if headers is None:
            self.send_request_error(RequestError(
                403, "cors_forbidden", "Cross-origin requests from this origin are not allowed."))
            return
        for name, value in headers.items():
            self.set_header(name, value)
        self.set_status(204)
        self.finish()

    def client_label(self) -> str:
        """Who is asking, for logs: the client address (with ``--xheaders``, the one
        the proxy reports). Where client tokens exist, their *name* belongs here --
        never the token itself."""
        return self.request.remote_ip or "-"

    def error_json(self, error: RequestError) -> dict[str, Any]:
        """The body for ``error``; the ``/v1`` handlers answer in OpenAI's shape."""
        return error.to_json()

    def send_request_error(self, error: RequestError) -> None:
        self.clear()
        self.set_status(error.status)
        if error.retry_after is not None:
            self.set_header("Retry-After", str(error.retry_after))
        if error.status == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="tornado_sse"')
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(self.error_json(error))

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
        self.send_request_error(RequestError(status_code, code, message))

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        # Tornado's version logs the request's URI, which may carry a token or
        # the question.
        if isinstance(value, HTTPError):
            if value.log_message:
                log.warning("%d %s: %s", value.status_code, request_summary(self), value.get_message())
        else:
            log.error("Uncaught exception %s", request_summary(self), exc_info=value)

    def stream_owner(self) -> str | None:
        """Who this request acts for, recorded on the streams it starts; only the
        same identity may resume or stop them. ``None`` while there are no client
        tokens. Return a non-secret identity (a token's name or digest): stores,
        including Redis, keep it."""
        return None

    def check_xsrf_cookie(self) -> None:
        # An API called by EventSource/fetch; authentication is by token, not cookie forms.
        pass
