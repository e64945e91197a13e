"""Client-token authentication for handlers: a mixin that runs before every method.

The token comes from ``Authorization: Bearer``. Handlers serving ``EventSource``
(which cannot send headers) set :attr:`ClientAuthMixin.url_token_methods` to also
accept, for those methods only, a ``token`` query parameter or the
``tornado_sse_token`` cookie. Only for safe methods: a cookie sent with a POST
would let any web page spend a visitor's token (CSRF).
"""

from __future__ import annotations

import logging
from typing import cast

from tornado_sse.auth import ANONYMOUS, AuthError, Principal, bearer_token
from tornado_sse.clients import Clients
from tornado_sse.relay import Relay, RelayedStream

from .base import JSONErrorHandler

log = logging.getLogger("tornado_sse.auth")

TOKEN_COOKIE = "tornado_sse_token"
TOKEN_PARAM = "token"


class ClientAuthMixin(JSONErrorHandler):
    url_token_methods: frozenset[str] = frozenset()
    principal: Principal = ANONYMOUS

    @property
    def clients(self) -> Clients:
        return cast(Clients, self.application.settings["clients"])

    def presented_token(self) -> str | None:
        token = bearer_token(self.request.headers.get("Authorization"))
        if token is None and self.request.method in self.url_token_methods:
            raw = self.request.query_arguments.get(TOKEN_PARAM)
            token = raw[-1].decode("utf-8", "replace") if raw else self.get_cookie(TOKEN_COOKIE)
        return token

    def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return  # a CORS preflight never carries credentials; it grants nothing itself
        try:
            self.principal = self.clients.authenticate(self.presented_token())
        except AuthError as exc:
            # Never the token itself: only that one was refused, and from where.
            log.warning("refused %s %s from %s: %s", self.request.method, self.request.path,
                        self.request.remote_ip, exc.code)
            self.send_request_error(exc)

    def stream_owner(self) -> str | None:
        # Streams remember their client's name: only that client resumes or stops them.
        return None if self.principal.anonymous else self.principal.name

    def client_label(self) -> str:
        """For logs: the token's name (never the token), else the address."""
        return super().client_label() if self.principal.anonymous else self.principal.name

    def open_stream(self, relay: Relay, body: bytes) -> RelayedStream:
        """Open a stream owned by this request's client (429 / 503 as RequestError)."""
        return self.clients.open_stream(self.principal, relay, body)
