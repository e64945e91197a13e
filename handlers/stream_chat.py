"""``/ai/streamChat``: the seed's endpoint, GET (EventSource) and POST (fetch)."""

from __future__ import annotations

import logging

from tornado.iostream import StreamClosedError

from tornado_sse import chat_request
from tornado_sse.channel import ClientChannel
from tornado_sse.chat_request import ChatRequest
from tornado_sse.config import Settings
from tornado_sse.errors import RequestError, StreamError
from tornado_sse.relay import Relay, RelayedStream

from .auth import ClientAuthMixin
from .base import JSONErrorHandler
from .client_socket import limit_send_buffer, send_immediately
from .sse_writer import DirectWriter

log = logging.getLogger("tornado_sse.handlers")

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    # nginx: do not buffer this response (the seed's header, kept).
    "X-Accel-Buffering": "no",
}


class StreamChatHandler(ClientAuthMixin, JSONErrorHandler):
    # EventSource cannot send headers: GET also takes ?token= or the cookie.
    url_token_methods = frozenset({"GET"})

    def initialize(self, settings: Settings, relay: Relay) -> None:
        self.cfg = settings
        self.relay = relay
        self.channel: ClientChannel | None = None
        self.stream: RelayedStream | None = None

    async def get(self) -> None:
        try:
            raw = self.request.query_arguments.get("question")
            question = None if raw is None else chat_request.decode_utf8(raw[-1], "'question'")
            request = chat_request.from_question(question, self.cfg)
        except RequestError as exc:
            self.send_request_error(exc)
            return
        await self._relay(request)

    async def post(self) -> None:
        try:
            request = chat_request.from_json_body(self.request.body, self.cfg)
        except RequestError as exc:
            self.send_request_error(exc)
            return
        await self._relay(request)

    async def _relay(self, request: ChatRequest) -> None:
        body = self.relay.upstream_body(request.messages, request.model, request.temperature)
        try:
            stream = self.open_stream(self.relay, body)
        except RequestError as exc:
            self.send_request_error(exc)
            return
        self.stream = stream
        self.logs_own_access = True
        stream.info.update(client=self.client_label(), method=self.request.method or "",
                           path=self.request.path)
        if self.cfg.log_content:
            stream.info["question"] = request.messages[-1]["content"]
        for name, value in SSE_HEADERS.items():
            self.set_header(name, value)
        self.set_header("X-Stream-Id", stream.session.id)
        cap = self.cfg.max_client_buffer
        limit_send_buffer(self.request.connection, cap)
        send_immediately(self.request.connection)
        channel = ClientChannel(
            DirectWriter(self), self.relay.wheel,
            heartbeat=self.cfg.heartbeat,
            max_buffer=cap,
            # Start merging well before the cut-off, so a client that lags
            # for a moment gets fewer, larger updates instead of an error.
            merge_threshold=min(16 * 1024, cap // 4),
            on_close=self._channel_closed,
        )
        self.channel = channel
        stream.session.attach(channel)
        channel.open(stream.session, retry_ms=self.cfg.retry_ms)
        await channel.done

    def _channel_closed(self, channel: ClientChannel, error: StreamError | None) -> None:
        if self.stream is not None:
            self.relay.listener_left(self.stream, channel, error)

    def on_connection_close(self) -> None:
        # The browser went away: the channel detaches, and a stream nobody
        # listens to aborts its upstream (the seed kept paying for it).
        if self.channel is not None:
            self.channel.disconnect()

    def abort_connection(self) -> None:
        if self.request.connection is not None:
            self.request.connection.close()  # type: ignore[attr-defined]

    def flush(self, include_footers: bool = False):  # type: ignore[no-untyped-def]
        future = super().flush(include_footers)
        # A client that left makes the write fail; the channel learns of it
        # through on_connection_close, so keep the failure from being logged.
        future.add_done_callback(_consume_closed)
        return future


def _consume_closed(future: object) -> None:
    exc = future.exception()  # type: ignore[attr-defined]
    if exc is not None and not isinstance(exc, StreamClosedError):
        log.debug("flush failed: %r", exc)
