"""The access log: one line per finished stream, one per other request.

A stream's line is written when the stream *ends* (the relay's ``on_stream_end``
hook), so it can say how it ended, how long it took and what it carried.
Tornado's own per-request line is therefore suppressed for requests that served
a stream (it would say the same thing with less). Every other request --
refusals, ``/healthz``, ``/metrics``, preflights -- keeps one line from
:func:`request_logger`, with the path but never the query string: the GET
endpoint carries the question there, and clients that cannot send headers may
carry a token.

Never logged: the upstream key (it is not in anything we log), client tokens
(only a token's *name* may appear, as the client), and the question text unless
``--log-content`` asks for it (then redacted and truncated).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .redact import redact
from .session import Listener
from .stream_stats import DeliveryStats, summarize

if TYPE_CHECKING:
    from tornado.web import RequestHandler

    from .metrics import Metrics
    from .relay import Relay, RelayedStream

STREAM_LOG = logging.getLogger("tornado_sse.access")
REQUEST_LOG = logging.getLogger("tornado.access")  # Tornado's name, so existing config applies

# With --log-content, questions are cut to this many characters: a log line
# should stay a line, and the full text is the client's business.
MAX_LOGGED_QUESTION = 1000

# Requests whose lines go to DEBUG: probes and scrapes every few seconds would
# drown everything else.
QUIET_PATHS = frozenset({"/healthz", "/metrics"})

# A handler that sets this attribute true has its request logged as a stream
# (by AccessLog, at the stream's end) and not again by request_logger.
STREAM_MARK = "logs_own_access"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    if any(c in text for c in ' ="\\') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


def logfmt(event: str, fields: dict[str, Any]) -> str:
    """``event key=value ...``; values with spaces, quotes or control characters quoted."""
    return " ".join([event, *(f"{k}={_text(v)}" for k, v in fields.items())])


def emit(logger: logging.Logger, level: int, event: str, fields: dict[str, Any]) -> None:
    logger.log(level, "%s", logfmt(event, fields), extra={"event": event, "fields": fields})


class AccessLog:
    """Writes the ``stream_end`` line of every stream of the relay it is attached to."""

    def __init__(self, log_content: bool = False, logger: logging.Logger = STREAM_LOG) -> None:
        self.log_content = log_content
        self.logger = logger
        # Bytes written to each stream's clients that already left, keyed
        # weakly so a listener leaving after the line was written leaks nothing.
        self._client_bytes: weakref.WeakKeyDictionary[RelayedStream, int] = (
            weakref.WeakKeyDictionary())

    def attach(self, relay: Relay) -> None:
        relay.on_listener_left.append(self.listener_left)
        relay.on_stream_end.append(self.stream_ended)

    def listener_left(self, stream: RelayedStream, listener: Listener) -> None:
        if isinstance(listener, DeliveryStats):
            self._client_bytes[stream] = self._client_bytes.get(stream, 0) + listener.bytes_sent

    def fields(self, stream: RelayedStream) -> dict[str, Any]:
        s = summarize(stream)
        info = stream.info
        fields: dict[str, Any] = {
            "stream": s.id,
            "client": info.get("client") or None,
            "method": info.get("method") or None,
            "path": info.get("path") or None,
            "status": 200,  # a stream exists only once its 200 was sent
            "reason": s.reason,
            "code": s.code or None,
            "duration": round(s.duration, 3),
            "ttft": None if s.ttft is None else round(s.ttft, 3),
            "deltas": s.deltas,
            "bytes": self._client_bytes.pop(stream, 0),
            "upstream_bytes": s.upstream_bytes,
            "abort": s.abort_cause,
        }
        question = info.get("question")
        if self.log_content and question is not None:
            if len(question) > MAX_LOGGED_QUESTION:
                question = question[:MAX_LOGGED_QUESTION] + "…"
            fields["question"] = redact(question)
        return fields

    def stream_ended(self, stream: RelayedStream) -> None:
        emit(self.logger, logging.INFO, "stream_end", self.fields(stream))


def request_logger(
    metrics: Metrics | None = None,
    quiet_paths: Iterable[str] = QUIET_PATHS,
    logger: logging.Logger = REQUEST_LOG,
) -> Callable[[RequestHandler], None]:
    """An Application ``log_function``: counts refusals, logs non-stream requests."""
    quiet = frozenset(quiet_paths)

    def log_request(handler: RequestHandler) -> None:
        if getattr(handler, STREAM_MARK, False):
            return
        status = handler.get_status()
        request = handler.request
        if metrics is not None and status >= 400 and request.path not in quiet:
            metrics.request_refused(status)
        client_label = getattr(handler, "client_label", None)
        fields = {
            "method": request.method,
            "path": request.path,
            "status": status,
            "client": client_label() if callable(client_label) else request.remote_ip,
            "duration": round(request.request_time(), 3),
        }
        if request.path in quiet and status < 400:
            level = logging.DEBUG
        elif status < 400:
            level = logging.INFO
        elif status < 500:
            level = logging.WARNING
        else:
            level = logging.ERROR
        if logger.isEnabledFor(level):
            emit(logger, level, "request", fields)

    return log_request
