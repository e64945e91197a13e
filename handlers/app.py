"""Assembling the application: routes, the relay, and the embedded demo upstream."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from tornado_sse.auth import TokenTable
from tornado_sse.clients import Clients
from tornado_sse.config import Settings
from tornado_sse.demo_upstream import make_demo_upstream_app
from tornado_sse.relay import Relay
from tornado_sse.store import make_store

from . import openai_compat
from .base import log_request
from .static_page import static_routes
from .stop import StopHandler
from .stream_chat import StreamChatHandler

log = logging.getLogger("tornado_sse.app")


def make_app(settings: Settings, relay: Relay, clients: Clients | None = None) -> Application:
    deps = {"settings": settings, "relay": relay}
    if clients is None:
        clients = Clients.from_settings(settings)
        clients.attach(relay)
    return Application(
        [
            (r"/ai/streamChat", StreamChatHandler, deps),
            (r"/ai/stop/([^/]+)", StopHandler, {"relay": relay}),
            *openai_compat.routes(deps),
            *static_routes(),
        ],
        # Never compress: gzip buffers, and SSE must flush each event.
        compress_response=False,
        # Handlers with ClientAuthMixin read the token table, limits and usage here.
        clients=clients,
        # Tornado's access log, with ?token= redacted.
        log_function=log_request,
    )


@dataclass
class Server:
    settings: Settings
    relay: Relay
    app: Application
    clients: Clients
    upstream_url: str
    demo_server: HTTPServer | None = None
    servers: list[HTTPServer] = field(default_factory=list)

    def listen(self, sockets: list[socket.socket]) -> HTTPServer:
        server = HTTPServer(self.app, idle_connection_timeout=3600)
        server.add_sockets(sockets)
        self.servers.append(server)
        return server

    async def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.relay.close()
        await self.relay.store.close()  # after close(): flushes the streams' ends
        if self.demo_server is not None:
            self.demo_server.stop()
            await self.demo_server.close_all_connections()


def start_demo_upstream(settings: Settings) -> tuple[HTTPServer, str]:
    """Serve the demo upstream on an ephemeral loopback port of this process."""
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(make_demo_upstream_app(settings.demo_delay))
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


def create_server(settings: Settings, tokens: TokenTable | None = None) -> Server:
    """Build everything that does not need a listening socket. Call from a running loop.

    ``tokens``: the client-token table, if already loaded (run.py loads it first
    to refuse a bad configuration before starting anything); else from settings.
    """
    clients = Clients.from_settings(settings, tokens)
    demo_server = None
    upstream_url = settings.upstream_url
    if upstream_url is None:
        demo_server, upstream_url = start_demo_upstream(settings)
        log.info("using the embedded demo upstream at %s", upstream_url)
    relay = Relay(settings, upstream_url, store=make_store(settings))
    relay.start()
    clients.attach(relay)
    app = make_app(settings, relay, clients)
    return Server(settings, relay, app, clients, upstream_url, demo_server)
