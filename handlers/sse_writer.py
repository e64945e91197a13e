"""The channel's writer for one streaming response: straight to the socket.

Through ``RequestHandler.write``/``flush`` every event costs four futures and
four loop callbacks (handler, HTTP/1 connection, IOStream, ours). Once the
headers are out, an event stream needs none of that: each flush is framed as
one HTTP/1.1 chunk and, when nothing is queued ahead of it, sent on the socket
at once; only what the kernel does not take (the client lags) goes to the
connection's ``IOStream``, with a future to wait on. The response still ends
through ``RequestHandler.finish``, whose terminating chunk the IOStream queues
behind ours.

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
        frame = b"%x\r\n%s\r\n" % (len(data), data)
        if not stream.writing() and not stream.closed():
            # Nothing queued before us, so order is kept: try the socket
            # first and skip the IOStream's buffer, future and callbacks
            # altogether in the usual case where the kernel takes it all.
            try:
                sent = stream.socket.send(frame)
            except OSError:
                sent = 0  # EAGAIN, or an error the IOStream will find and report
            if sent == len(frame):
                return None
            frame = frame[sent:]
        # Raises StreamClosedError if the client is gone.
        future = stream.write(frame)
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
    # Plain sockets only: TLS needs the SSLIOStream's own write path.
    if (getattr(connection, "_chunking_output", False) is True and type(stream) is IOStream
            and stream.socket is not None):
        return stream
    return None
