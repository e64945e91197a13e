"""``/ai/streamChat``: the seed's endpoint, GET (EventSource) and POST (fetch).

A request carrying ``Last-Event-ID`` (or ``?lastEventId=``) resumes the stream it
names instead of asking the upstream again.
"""

from __future__ import annotations

import logging

from tornado_sse import chat_request, resume
from tornado_sse.channel import ClientChannel
from tornado_sse.chat_request import ChatRequest
from tornado_sse.config import Settings
from tornado_sse.errors import RequestError, StreamError
from tornado_sse.relay import Relay
from tornado_sse.response_writer import ChannelWriterMixin
from tornado_sse.resume import EventRef
from tornado_sse.session import StreamSession

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


class StreamChatHandler(ClientAuthMixin, ChannelWriterMixin, JSONErrorHandler):
    # EventSource cannot send headers: GET also takes ?token= or the cookie.
    url_token_methods = frozenset({"GET"})

    def initialize(self, settings: Settings, relay: Relay) -> None:
        self.cfg = settings
        self.relay = relay
        self.channel: ClientChannel | None = None
        self.session: StreamSession | None = None

    def _resume_ref(self) -> EventRef | None:
        raw = self.request.query_arguments.get("lastEventId")
        query = None if raw is None else chat_request.decode_utf8(raw[-1], "'lastEventId'")
        return resume.requested(self.request.headers.get("Last-Event-ID"), query)

    async def get(self) -> None:
        try:
            ref = self._resume_ref()
            if ref is not None:
                await self._resume(ref)
                return
            raw = self.request.query_arguments.get("question")
            question = None if raw is None else chat_request.decode_utf8(raw[-1], "'question'")
            request = chat_request.from_question(question, self.cfg)
        except RequestError as exc:
            self.send_request_error(exc)
            return
        await self._relay(request)

    async def post(self) -> None:
        try:
            ref = self._resume_ref()
            if ref is not None:
                await self._resume(ref)
                return
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
        stream.info.update(client=self.client_label(), method=self.request.method or "",
                           path=self.request.path)
        if self.cfg.log_content:
            stream.info["question"] = request.messages[-1]["content"]
        # The stream's access-log line is written when it ends (by the relay's
        # hooks); a resumed request gets an ordinary request line instead.
        self.logs_own_access = True
        channel = self._start_sse(stream.session)
        stream.session.attach(channel)
        channel.open(stream.session, retry_ms=self.cfg.retry_ms)
        await channel.done

    async def _resume(self, ref: EventRef) -> None:
        """Raises :class:`RequestError` (403, 503) before anything is written."""
        found = await self.relay.resume(ref, self.stream_owner())
        if found is None:
            # Unknown, expired or already over: 204 makes an EventSource stop
            # reconnecting instead of asking the question again.
            self.set_status(204)
            self.finish()
            return
        session = found.session
        log.info("stream %s: resumed after %s:%d", session.id, ref.stream_id, ref.seq)
        channel = self._start_sse(session)
        channel.open(session, retry_ms=self.cfg.retry_ms, start=False, seen=ref.seq)
        channel.replay(found.missed)
        if session.ended:
            channel.on_end(session)
        else:
            session.attach(channel)
        await channel.done

    def _start_sse(self, session: StreamSession) -> ClientChannel:
        self.session = session
        for name, value in SSE_HEADERS.items():
            self.set_header(name, value)
        self.set_header("X-Stream-Id", session.id)
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
        return channel

    def _channel_closed(self, channel: ClientChannel, error: StreamError | None) -> None:
        if self.session is not None:
            # A client that simply went away may reconnect: the relay keeps its
            # upstream for the resume window. One we cut off (slow_client) won't.
            self.relay.release(self.session, channel, error)

    def on_connection_close(self) -> None:
        # The browser went away: the channel detaches, and a stream nobody
        # listens to aborts its upstream (the seed kept paying for it).
        if self.channel is not None:
            self.channel.disconnect()
