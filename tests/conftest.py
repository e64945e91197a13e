"""Shared fixtures: a fake upstream speaking real HTTP and an in-process app."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from handlers.app import Server, create_server
from tornado_sse.config import Settings

from .fake_upstream import FakeUpstream
from .redis_server import redis_server
from .sse_client import close_all


@pytest.fixture
def fake(io_loop: IOLoop) -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start()
    yield upstream

    async def close() -> None:
        close_all()  # test clients first, while the loop can still close them
        await upstream.stop()
        await asyncio.sleep(0.01)

    io_loop.run_sync(close)


@pytest.fixture
def settings(fake: FakeUpstream) -> Settings:
    # resume_window=0: a client that leaves aborts its upstream at once (the relay
    # core's behaviour, which most tests assert); resume tests set their own window.
    return Settings(upstream_url=fake.url, api_key="sk-test-SECRET-key-123456", heartbeat=15.0,
                    max_streams=200, resume_window=0)


class Running:
    def __init__(self, server: Server, port: int) -> None:
        self.server = server
        self.port = port
        self.relay = server.relay

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def start_app(settings: Settings) -> tuple[Running, HTTPServer]:
    server = create_server(settings)
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    http = server.listen(sockets)
    return Running(server, sockets[0].getsockname()[1]), http


@pytest.fixture
def make_app(io_loop: IOLoop) -> Iterator[Any]:
    started: list[Running] = []

    def factory(settings: Settings) -> Running:
        running, _ = start_app(settings)
        started.append(running)
        return running

    yield factory
    for running in started:
        io_loop.run_sync(running.server.close)


@pytest.fixture
def app(make_app: Any, settings: Settings) -> Running:
    return make_app(settings)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real redis-server (loopback, random port, no persistence) for the run."""
    with redis_server() as url:
        if url is None:
            reason = ("redis-server is not installed (Debian: apt-get install redis-server); "
                      "the Redis store tests need a real one")
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{reason}; CI must run them (.ci/run installs redis-server)")
            pytest.skip(reason)
        yield url
