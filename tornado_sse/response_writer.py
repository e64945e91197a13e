"""Makes a Tornado ``RequestHandler`` the :class:`~tornado_sse.channel.ResponseWriter`
a :class:`~tornado_sse.channel.ClientChannel` writes to."""

from __future__ import annotations

import logging
from typing import Any

from tornado.concurrent import Future
from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

log = logging.getLogger("tornado_sse.channel")


class ChannelWriterMixin(RequestHandler):
    def abort_connection(self) -> None:
        """Drop the connection now (a client cut off for not reading)."""
        if self.request.connection is not None:
            self.request.connection.close()  # type: ignore[attr-defined]

    def flush(self, include_footers: bool = False) -> Future[None]:
        future = super().flush(include_footers)
        # A client that left makes the write fail; the channel learns of it
        # through on_connection_close, so keep the failure from being logged.
        future.add_done_callback(consume_closed)
        return future


def consume_closed(future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None and not isinstance(exc, StreamClosedError):
        log.debug("flush failed: %r", exc)
