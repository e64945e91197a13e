"""Assembling the application: routes, the relay, and the embedded demo upstream."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from tornado_sse.access_log import AccessLog, request_logger
from tornado_sse.auth import TokenTable
from tornado_sse.clients import Clients
from tornado_sse.config import Settings
from tornado_sse.cors import CorsPolicy
from tornado_sse.demo_upstream import make_demo_upstream_app
from tornado_sse.metrics import Metrics
from tornado_sse.relay import Relay
from tornado_sse.store import make_store

from . import openai_compat
from .ops import HealthHandler, MetricsHandler
from .static_page import static_routes
from .stop import StopHandler
from .stream_chat import StreamChatHandler

log = logging.getLogger("tornado_sse.app")


def make_app(settings: Settings, relay: Relay, clients: Clients | None = None,
             metrics: Metrics | None = None) -> Application:
    deps = {"settings": settings, "relay": relay}
    if clients is None:
        clients = Clients.from_settings(settings)
        clients.attach(relay)
    metrics = metrics or Metrics(settings.max_streams)
    return Application(
        [
            (r"/ai/streamChat", StreamChatHandler, deps),
            (r"/ai/stop/([^/]+)", StopHandler, {"relay": relay}),
            *openai_compat.routes(deps),
            (r"/healthz", HealthHandler, {"relay": relay}),
            (r"/metrics", MetricsHandler, {"metrics": metrics}),
            *static_routes(),
        ],
        # Never compress: gzip buffers, and SSE must flush each event.
        compress_response=False,
        # Handlers with ClientAuthMixin read the token table, limits and usage here.
        clients=clients,
        # One line per non-stream request (path only, never the query string,
        # which may hold the question or a token); streams get theirs from
        # AccessLog when they end.
        log_function=request_logger(metrics),
        cors=CorsPolicy(settings.cors_origins),
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
    metrics: Metrics | None = None

    def listen(self, sockets: list[socket.socket]) -> HTTPServer:
        server = HTTPServer(self.app, idle_connection_timeout=3600, xheaders=self.settings.xheaders)
        server.add_sockets(sockets)
        self.servers.append(server)
        return server

    async def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.relay.close()
        for server in self.servers:
            await server.close_all_connections()
        if self.metrics is not None:
            self.metrics.close()
        await self.relay.store.close()  # after relay.close(): flushes the streams' ends
        if self.demo_server is not None:
            self.demo_server.stop()
            await self.demo_server.close_all_connections()


def start_demo_upstream(settings: Settings) -> tuple[HTTPServer, str]:
    """Serve the demo upstream on an ephemeral loopback port of this process."""
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    demo_app = make_demo_upstream_app(settings.demo_delay)
    # Each demo answer would otherwise add a tornado.access line next to the
    # stream's own access-log line; keep them for debugging only.
    demo_app.settings["log_function"] = request_logger(
        logger=logging.getLogger("tornado_sse.demo_upstream"), quiet_paths=("/v1/chat/completions",))
    server = HTTPServer(demo_app)
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
    metrics = Metrics(settings.max_streams)
    metrics.attach(relay)
    AccessLog(settings.log_content).attach(relay)
    app = make_app(settings, relay, clients, metrics)
    return Server(settings, relay, app, clients, upstream_url, demo_server, metrics=metrics)
