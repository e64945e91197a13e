"""The OpenAI-compatible face: ``/v1/chat/completions``, ``/v1/models``, ``/v1/usage``.

HTTP only: validation is :mod:`tornado_sse.openai_request`, the response formats
:mod:`tornado_sse.openai_response`, the streaming and collecting listeners
:mod:`tornado_sse.openai_channel`. Errors use OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` so SDKs raise their typed
exceptions (``AuthenticationError`` for 401, ``RateLimitError`` for 429, ...).
"""

from __future__ import annotations

import logging
from typing import Any

from tornado.concurrent import Future

from tornado_sse.config import Settings
from tornado_sse.errors import RequestError, StreamError
from tornado_sse.openai_channel import ChunkChannel, CompletionCollector
from tornado_sse.openai_request import CompletionRequest, parse_completion_request
from tornado_sse.openai_response import error_body
from tornado_sse.relay import Relay, RelayedStream
from tornado_sse.response_writer import ChannelWriterMixin

from .auth import ClientAuthMixin
from .base import JSONErrorHandler
from .stream_chat import SSE_HEADERS

log = logging.getLogger("tornado_sse.handlers")


class OpenAIHandler(ClientAuthMixin, ChannelWriterMixin, JSONErrorHandler):
    def initialize(self, settings: Settings, relay: Relay) -> None:
        self.cfg = settings
        self.relay = relay

    def error_json(self, error: RequestError) -> dict[str, Any]:
        return error_body(error.status, error.code, error.message)

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        request_id = self._headers.get("X-Request-Id")
        self.clear()  # drops the event-stream headers of a stream that failed early
        if request_id:
            self.set_header("X-Request-Id", request_id)
        self.set_status(status)
        if status in (429, 503):
            self.set_header("Retry-After", "1")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(body)


class ChatCompletionsHandler(OpenAIHandler):
    """``POST /v1/chat/completions``, ``stream`` true or false; the upstream always streams."""

    stream: RelayedStream | None = None
    channel: ChunkChannel | None = None
    collector: CompletionCollector | None = None
    collected: Future[None] | None = None
    gone = False

    async def post(self) -> None:
        try:
            request = parse_completion_request(self.request.body, self.cfg)
            stream = self.open_stream(self.relay, request.upstream_body(self.cfg.upstream_usage))
        except RequestError as exc:
            self.send_request_error(exc)
            return
        self.stream = stream
        self.logs_own_access = True  # the access log's line comes when the stream ends
        stream.info.update(client=self.client_label(), method=self.request.method or "",
                           path=self.request.path)
        if self.cfg.log_content:
            stream.info["question"] = _last_text(request.upstream["messages"])
        # The SDKs expose this as the response's request id.
        self.set_header("X-Request-Id", stream.session.id)
        if request.stream:
            await self._stream(stream, request)
        else:
            await self._collect(stream)

    # -- stream: true ------------------------------------------------------------

    async def _stream(self, stream: RelayedStream, request: CompletionRequest) -> None:
        for name, value in SSE_HEADERS.items():
            self.set_header(name, value)
        channel = ChunkChannel(
            self, self.relay.wheel,
            include_usage=request.include_usage,
            on_early_error=self.send_json,
            heartbeat=self.cfg.heartbeat,
            on_close=self._channel_closed,
        )
        self.channel = channel
        stream.on_chunk = channel.on_chunk
        stream.session.attach(channel)
        channel.open(stream.session, retry_ms=None, start=False)
        await channel.done

    def _channel_closed(self, channel: ChunkChannel, error: StreamError | None) -> None:
        if self.stream is not None:
            # No grace window: nothing can resume a /v1 stream (its events carry no
            # ids), so a client that left will not be back for this answer.
            self.relay.listener_left(self.stream, channel, error, grace=False)

    # -- stream: false -----------------------------------------------------------

    async def _collect(self, stream: RelayedStream) -> None:
        done: Future[None] = Future()
        self.collected = done
        collector = CompletionCollector(lambda _session: _resolve(done))
        self.collector = collector
        stream.on_chunk = collector.on_chunk
        stream.session.attach(collector)
        await done
        outcome = stream.session.outcome
        if self.gone or outcome is None:
            return
        self.send_json(*collector.response(outcome))

    # -- the client went away ----------------------------------------------------

    def on_connection_close(self) -> None:
        self.gone = True
        if self.channel is not None:
            self.channel.disconnect()
        elif self.collector is not None and self.stream is not None:
            # Nobody waits for the answer any more: stop paying for it.
            self.relay.listener_left(self.stream, self.collector, grace=False)
            if self.collected is not None:
                _resolve(self.collected)


class ModelsHandler(OpenAIHandler):
    """``GET /v1/models`` and ``/v1/models/{id}``: the server's default model.

    Other model names are still forwarded to the upstream as given; listing
    the upstream's catalogue would need a second, non-streaming upstream path.
    """

    def _model(self) -> dict[str, Any]:
        return {"id": self.cfg.model, "object": "model", "created": 0, "owned_by": "tornado_sse"}

    def get(self, model_id: str | None = None) -> None:
        if model_id is None:
            self.finish({"object": "list", "data": [self._model()]})
        elif model_id == self.cfg.model:
            self.finish(self._model())
        else:
            self.send_request_error(RequestError(404, "model_not_found",
                                                 f"The model {model_id!r} is not listed here."))


class UsageHandler(OpenAIHandler):
    """``GET /v1/usage``: the calling client's recorded usage and its limits."""

    def get(self) -> None:
        clients = self.clients
        report = clients.usage.report(self.principal)
        report["open_streams"] = clients.limiter.streams(self.principal)
        report["limits"] = {"max_streams": clients.limiter.max_streams or None,
                            "requests_per_minute": clients.limiter.per_minute or None}
        self.finish(report)


class NotFoundHandler(OpenAIHandler):
    """Any other ``/v1/*`` path: a 401 or a 404, in OpenAI's shape."""

    def prepare(self) -> None:
        super().prepare()
        if not self._finished:
            self.send_request_error(RequestError(404, "not_found",
                                                 f"No endpoint {self.request.method} {self.request.path}."))


def _last_text(messages: list[dict[str, Any]]) -> str:
    """The last message's text (for --log-content): a string, or its text parts."""
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _resolve(future: Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def routes(deps: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    return [
        (r"/v1/chat/completions", ChatCompletionsHandler, deps),
        (r"/v1/models", ModelsHandler, deps),
        (r"/v1/models/(.+)", ModelsHandler, deps),
        (r"/v1/usage", UsageHandler, deps),
        (r"/v1/.*", NotFoundHandler, deps),
    ]
