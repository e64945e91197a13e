"""Clients of the server: authentication, per-client limits and usage, tied to streams.

A stream belongs to the client that opened it for its whole life (which may
outlast the request that opened it): its stream slot is held until it ends, and
its usage is recorded when it ends. The relay reports every end through
``Relay.on_stream_end``, so no path can forget to release a slot.
"""

from __future__ import annotations

from .auth import Principal, TokenTable
from .config import Settings
from .limits import TokenLimiter
from .relay import Relay, RelayedStream
from .usage import UsageBook


class Clients:
    def __init__(self, tokens: TokenTable, limiter: TokenLimiter, usage: UsageBook) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.usage = usage
        self._owners: dict[str, Principal] = {}

    @classmethod
    def from_settings(cls, settings: Settings, tokens: TokenTable | None = None) -> Clients:
        return cls(
            tokens if tokens is not None else TokenTable.from_settings(settings),
            TokenLimiter(settings.max_streams_per_token, settings.rate_limit),
            UsageBook(),
        )

    def attach(self, relay: Relay) -> None:
        relay.on_stream_end.append(self.stream_ended)

    def authenticate(self, presented: str | None) -> Principal:
        """The client behind ``presented``, or :class:`~tornado_sse.auth.AuthError` (401)."""
        return self.tokens.authenticate(presented)

    def open_stream(self, principal: Principal, relay: Relay, body: bytes) -> RelayedStream:
        """Open an upstream stream for ``principal``.

        Raises :class:`~tornado_sse.limits.LimitExceeded` (429) past the
        client's limits, :class:`~tornado_sse.errors.Overloaded` (503) past
        the server's.
        """
        self.limiter.acquire(principal)
        try:
            # The client's name (never its token) guards resume and Stop.
            stream = relay.open(body, owner=None if principal.anonymous else principal.name)
        except BaseException:
            self.limiter.release(principal)
            raise
        self._owners[stream.session.id] = principal
        return stream

    def owner(self, stream: RelayedStream) -> Principal | None:
        return self._owners.get(stream.session.id)

    def stream_ended(self, stream: RelayedStream) -> None:
        principal = self._owners.pop(stream.session.id, None)
        if principal is None:
            return
        self.limiter.release(principal)
        # What the upstream reported, however the stream ended (a stream cut
        # after the usage chunk but before [DONE] was still billed).
        self.usage.record(principal, stream.decoder.usage)
