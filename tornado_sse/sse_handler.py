"""A base handler for hand-written SSE endpoints: the porting API.

PHP streaming controllers (like the seed's ThinkPHP ``AiController``) are a
sequence of ``header()`` calls, a curl request whose ``CURLOPT_WRITEFUNCTION``
echoes each piece as an event, ``ob_flush(); flush();`` after every echo, and an
``exit``. :class:`SSEHandler` keeps that shape and supplies what the PHP version
lacked::

    class AiController(SSEHandler):
        async def get(self) -> None:
            call = self.open_upstream({"messages": [{"role": "user", "content": q}]})
            try:
                outcome = await call.stream(lambda text: self.send("update", {"content": text}))
            except StreamError as exc:
                self.send("error", exc.to_event_data())
                outcome = Outcome("error")
            self.send("end", outcome.end_data())

* ``send(event, data, id=None)`` and ``comment(text)`` write **and flush**; the
  first one sends the SSE headers. ``data`` that is not a string is JSON with
  non-ASCII kept as is (``JSON_UNESCAPED_UNICODE``); the library's encoder makes
  any string safe (a newline in data can never start a forged event).
* Heartbeats: ``: heartbeat`` whenever nothing was written for the relay's
  ``heartbeat`` seconds (one shared timer wheel, not a timer per client).
* Disconnect: when the client goes away, :attr:`disconnected` turns true, further
  sends do nothing, and a running upstream call is **aborted** (its socket
  closed), so nobody pays for an answer nobody reads.
* ``open_upstream(body)`` starts a streaming chat completion through the
  relay (pycurl underneath, via :class:`~tornado_sse.upstream.UpstreamClient`)
  with the relay's first-token, idle and total timeouts, and
  ``await call.stream(on_delta)`` calls ``on_delta`` once per text delta --
  parsed across curl chunk boundaries, never half an event or half a character.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from tornado.concurrent import Future

from .channel import ClientChannel, json_data
from .errors import RequestError, StreamError
from .relay import Relay, RelayedStream
from .response_writer import ChannelWriterMixin
from .session import Outcome, StreamSession

log = logging.getLogger("tornado_sse.handler")

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer this response
}


class UpstreamCall:
    """One streaming chat-completion call, started by :meth:`SSEHandler.open_upstream`."""

    def __init__(self, relay: Relay, stream: RelayedStream, channel_stats: Callable[[], Any]) -> None:
        self._relay = relay
        self._stream = stream
        self._channel_stats = channel_stats
        self._on_delta: Callable[[str], object] | None = None
        self._early: list[tuple[int, str]] = []  # deltas before stream() was awaited
        self._ended: Future[Outcome] = Future()
        self._failure: BaseException | None = None
        self._left = False
        self.seq = 0  # number of the delta being delivered (1, 2, ...)
        stream.session.attach(self)

    @property
    def id(self) -> str:
        """The stream id (unguessable), as the main endpoint's ``start`` event carries it."""
        return self._stream.session.id

    @property
    def ended(self) -> bool:
        return self._stream.session.ended

    async def stream(self, on_delta: Callable[[str], object]) -> Outcome:
        """Call ``on_delta(text)`` for each delta until the answer ends.

        Returns the :class:`Outcome` (``reason`` ``stop``, ``length``,
        ``content_filter``, or ``cancelled`` when the client left); raises the
        :class:`StreamError` that ended it otherwise (timeouts, upstream errors).
        """
        self._on_delta = on_delta
        early, self._early = self._early, []
        for seq, text in early:
            self._deliver(seq, text)
        outcome = await self._ended
        if self._failure is not None:
            raise self._failure
        if outcome.error is not None:
            raise outcome.error
        return outcome

    def _deliver(self, seq: int, text: str) -> None:
        assert self._on_delta is not None
        self.seq = seq
        try:
            self._on_delta(text)
        except Exception as exc:
            # A bug in the callback must not leave the upstream running.
            self._failure = exc
            self.leave()

    # -- Listener (called by the session) ------------------------------------------

    def on_update(self, session: StreamSession, seq: int, content: str) -> None:
        if self._failure is not None:
            return
        if self._on_delta is None:
            self._early.append((seq, content))
        else:
            self._deliver(seq, content)

    def on_end(self, session: StreamSession) -> None:
        assert session.outcome is not None
        if not self._ended.done():
            self._ended.set_result(session.outcome)
        self.leave()

    # -- delivery counters for metrics and the access log (DeliveryStats) ------------

    @property
    def bytes_sent(self) -> int:
        return int(self._channel_stats().bytes_sent)

    @property
    def heartbeats(self) -> int:
        return int(self._channel_stats().heartbeats)

    @property
    def merged(self) -> int:
        return int(self._channel_stats().merged)

    def leave(self, error: StreamError | None = None) -> None:
        """Stop listening; a stream left by everyone is aborted by the relay."""
        if not self._left:
            self._left = True
            # No grace window: a hand-written handler's events carry no resumable
            # ids, so a client that left is not coming back for this answer.
            self._relay.listener_left(self._stream, self, error, grace=False)
        if not self._ended.done():
            # Detached, this call hears no on_end: finish it here.
            self._ended.set_result(self._stream.session.outcome or Outcome("cancelled"))


class SSEHandler(ChannelWriterMixin):
    """Base class for streaming endpoints; see the module docstring.

    Mount with the relay: ``(r"/ai/streamChat", MyHandler, {"relay": relay})``.
    """

    def initialize(self, relay: Relay) -> None:
        self.relay = relay
        self._channel: ClientChannel | None = None
        self._call: UpstreamCall | None = None
        self._gone = False
        self.logs_own_access = False  # see tornado_sse.access_log

    # -- writing -------------------------------------------------------------------

    def start_sse(self, retry_ms: int | None = None) -> None:
        """Send the SSE headers now (and a ``retry:`` hint); the first send does it anyway."""
        if self._channel is not None:
            return
        for name, value in SSE_HEADERS.items():
            self.set_header(name, value)
        if self._call is not None:
            self.set_header("X-Stream-Id", self._call.id)
        cap = self.relay.settings.max_client_buffer
        self._channel = ClientChannel(
            self, self.relay.wheel, heartbeat=self.relay.settings.heartbeat,
            max_buffer=cap, merge_threshold=min(16 * 1024, cap // 4),
            on_close=self._channel_closed)
        if self._gone:
            self._channel.disconnect()
            return
        if retry_ms is not None:
            self._channel.send_retry(retry_ms)
        else:
            self.flush()  # the headers alone: EventSource fires "open"
        self._channel.start_heartbeats()

    def send(self, event: str | None, data: Any, id: str | None = None) -> None:
        """Write one event and flush it. ``data``: a string as is, anything else as JSON."""
        self.start_sse()
        assert self._channel is not None
        text = data if isinstance(data, str) else json_data(data)
        self._channel.send_event(text, event=event, id=id)

    def comment(self, text: str) -> None:
        """Write a ``: comment`` line (ignored by clients, keeps proxies from timing out)."""
        self.start_sse()
        assert self._channel is not None
        self._channel.send_comment(text)

    @property
    def disconnected(self) -> bool:
        """PHP's ``connection_aborted()``: the client is gone (or was cut off)."""
        return self._gone or (self._channel is not None and self._channel.closed)

    # -- the upstream --------------------------------------------------------------

    def open_upstream(self, body: Mapping[str, Any]) -> UpstreamCall:
        """Start a streaming chat completion with ``body`` (OpenAI request fields;
        ``stream`` is forced on, ``model`` defaults to the configured one).

        Raises :class:`~tornado_sse.errors.RequestError` (503 + Retry-After) at
        capacity or while shutting down; before any byte was sent, that becomes
        a JSON error response.
        """
        fields = dict(body)
        fields.setdefault("model", self.relay.settings.model)
        fields["stream"] = True
        stream = self.relay.open(json.dumps(fields, ensure_ascii=False).encode())
        stream.info.update(client=self.request.remote_ip or "", method=self.request.method or "",
                           path=self.request.path)
        self.logs_own_access = True
        self._call = UpstreamCall(self.relay, stream, self._delivery_stats)
        if self._gone:
            self._call.leave()
        return self._call

    def _delivery_stats(self) -> Any:
        return self._channel if self._channel is not None else _NO_DELIVERY

    # -- disconnects and errors ------------------------------------------------------

    def _channel_closed(self, channel: ClientChannel, error: StreamError | None) -> None:
        if self._call is not None and not self._call.ended:
            self._call.leave(error)

    def on_connection_close(self) -> None:
        self._gone = True
        if self._channel is not None:
            self._channel.disconnect()
        elif self._call is not None:
            self._call.leave()

    def on_finish(self) -> None:
        # The response is complete: stop the heartbeats (and any upstream
        # the subclass forgot to await).
        if self._channel is not None:
            self._channel.disconnect()
        elif self._call is not None:
            self._call.leave()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, RequestError):
            self.set_status(exc.status)
            if exc.retry_after is not None:
                self.set_header("Retry-After", str(exc.retry_after))
            self.finish(exc.to_json())
            return
        code = "internal" if status_code >= 500 else f"http_{status_code}"
        message = "Internal server error." if status_code >= 500 else self._reason
        self.finish({"error": {"code": code, "message": message}})

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, RequestError):
            return  # an answer (400, 503), not a fault
        super().log_exception(typ, value, tb)

    def check_xsrf_cookie(self) -> None:
        pass  # an API for EventSource/fetch, not a form


class _NoDelivery:
    bytes_sent = 0
    heartbeats = 0
    merged = 0


_NO_DELIVERY = _NoDelivery()

