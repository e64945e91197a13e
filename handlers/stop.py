"""``POST /ai/stop/<stream-id>``: the Stop button. Aborts the upstream at once and
ends the stream for every listener with ``end`` reason ``cancelled``, whichever
process relays it (with a shared store)."""

from __future__ import annotations

from tornado_sse import resume
from tornado_sse.errors import RequestError
from tornado_sse.relay import Relay

from .auth import ClientAuthMixin
from .base import JSONErrorHandler

# state -> HTTP status. "stopping": another process was asked and will do it.
_STATUS = {"stopped": 200, "ended": 200, "stopping": 202}


class StopHandler(ClientAuthMixin, JSONErrorHandler):
    # POST: the token comes only from Authorization, never a cookie (no CSRF stops).

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    async def post(self, stream_id: str) -> None:
        try:
            resume.check_stream_id(stream_id)
            result = await self.relay.stop(stream_id, self.stream_owner())
            if result.state == "unknown":
                raise RequestError(404, "unknown_stream", "No such stream (or it expired).")
            if result.state == "forbidden":
                raise resume.NotStreamOwner()
        except RequestError as exc:
            self.send_request_error(exc)
            return
        body: dict[str, object] = {"stream": stream_id, "state": result.state}
        if result.reason is not None:
            body["reason"] = result.reason
        self.set_status(_STATUS[result.state])
        self.finish(body)
