"""The channel's writer for one streaming response: straight to the socket.

Through ``RequestHandler.write``/``flush`` every event costs four futures and
four loop callbacks (handler, HTTP/1 connection, IOStream, ours). Once the
headers are out, an event stream needs none of that: each flush is framed as
one HTTP/1.1 chunk and handed to the connection's ``IOStream``, and only when
the kernel did not take it all at once (the client lags) is there a future to
wait on. The response still ends through ``RequestHandler.finish``, whose
terminating chunk the IOStream queues behind ours.

Only for chunked HTTP/1.1 responses, as Tornado decided when it wrote the
headers; anything else (an HTTP/1.0 client, a future Tornado that works
differently) takes the ordinary path.
"""

from __future__ import annotations

from collections.abc import Awaitable

from tornado.iostream import IOStream, StreamClosedError
from tornado.web import RequestHandler


class DirectWriter:
    """Implements :class:`tornado_sse.channel.ResponseWriter` for ``handler``."""

    def __init__(self, handler: RequestHandler) -> None:
        self._handler = handler
        self._buf: list[bytes] = []
        self._headers_sent = False
        self._stream: IOStream | None = None  # set when the direct path applies

    def write(self, chunk: bytes) -> None:
        self._buf.append(chunk)

    def flush(self) -> Awaitable[None] | None:
        data = self._buf[0] if len(self._buf) == 1 else b"".join(self._buf)
        self._buf.clear()
        stream = self._stream
        if stream is None:
            if self._handler._finished:
                raise StreamClosedError()
            self._handler.write(data)
            future = self._handler.flush()
            if not self._headers_sent:
                self._headers_sent = True
                self._stream = _chunked_stream(self._handler)
            return future
        if not data:
            return None  # an empty chunk would end the response
        # Raises StreamClosedError if the client is gone.
        future = stream.write(b"%x\r\n%s\r\n" % (len(data), data))
        return future if stream.writing() else None

    def finish(self) -> Awaitable[None]:
        self._stream = None
        return self._handler.finish()

    def abort_connection(self) -> None:
        self._stream = None
        self._handler.abort_connection()  # type: ignore[attr-defined]


def _chunked_stream(handler: RequestHandler) -> IOStream | None:
    connection = handler.request.connection
    stream = getattr(connection, "stream", None)
    # HTTP1Connection decides on chunking when it writes the headers.
    if getattr(connection, "_chunking_output", False) is True and isinstance(stream, IOStream):
        return stream
    return None
