"""Capacity (503 at the stream cap) and the slow-client policy, over real sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import time
from typing import Any

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, sse_stream
from tests.sse_client import contents, request
from tornado_sse.channel import ClientChannel
from tornado_sse.config import Settings


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# -- capacity -------------------------------------------------------------------

async def test_503_at_the_stream_cap_then_streams_work_again(make_app: Any, settings: Settings,
                                                             fake: FakeUpstream) -> None:
    running: Running = make_app(settings.replace(max_streams=2))
    fake.queue(Script(hang=True), Script(hang=True))
    held = [await request(running.url("/ai/streamChat?question=a")) for _ in range(2)]
    for resp in held:
        assert (await resp.next_event()) is not None  # retry: -- the stream is open
    await wait_for(lambda: len(fake.received) == 2)
    assert running.relay.active == 2

    t0 = time.monotonic()
    refused = await request(running.url("/ai/streamChat?question=b"))
    body = await refused.body()
    assert time.monotonic() - t0 < 1.0  # at once, never queued
    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"error": {"code": "overloaded",
                                          "message": "The server is at capacity; try again shortly."}}
    assert len(fake.received) == 2  # the refused request never reached the upstream

    # One stream leaves: its slot (and upstream connection) is freed ...
    held[0].close()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    await wait_for(lambda: running.relay.active == 1)
    # ... and the next request is served in full.
    again = await request(running.url("/ai/streamChat?question=c"))
    assert again.status == 200
    events = await again.events()
    assert contents(events) == "Hello, world!"
    assert events[-1].json == {"reason": "stop"}


# -- slow clients ---------------------------------------------------------------

async def open_unread_stream(port: int, path: str) -> socket.socket:
    """A client with a tiny receive window that reads only when told to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connect, so the window advertised in the handshake is small too;
    # loopback's default (auto-tuned to MBs) would absorb the whole test.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def merged_update_in(raw: bytes) -> bool:
    """An update whose id skips sequence numbers carries several deltas."""
    ids = [int(m) for m in re.findall(rb"id: [\w-]+:(\d+)", raw)]
    return any(b - a > 1 for a, b in itertools.pairwise(ids))


async def read_slowly_until_merged(sock: socket.socket, timeout: float) -> bytes:
    """Read 2 KiB every 20 ms (slower than the upstream produces) until the
    client sees a merged update; what the kernels buffered comes first."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    deadline = time.monotonic() + timeout
    while not merged_update_in(got) and time.monotonic() < deadline:
        got += await asyncio.wait_for(loop.sock_recv(sock, 2048), 5)
        await asyncio.sleep(0.02)
    return bytes(got)


async def read_to_close(sock: socket.socket, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not await asyncio.wait_for(loop.sock_recv(sock, 65536), deadline - time.monotonic()):
                return
        except ConnectionResetError:
            return
    raise AssertionError("the server did not close the connection")


async def test_slow_client_is_merged_then_cut_off_and_upstream_aborted(
        make_app: Any, settings: Settings, fake: FakeUpstream) -> None:
    cap = 32 * 1024
    running: Running = make_app(settings.replace(max_client_buffer=cap))
    # Token-sized deltas, thousands a second: as separate events (~80 bytes
    # each) they outrun the client's 100 KB/s, merged (10 bytes each) they
    # do not -- until the client stops reading altogether.
    fake.queue(Script.stream(sse_stream(["x" * 10] * 30000), piece=1200, pause=0.001))
    sock = await open_unread_stream(running.port, "/ai/streamChat?question=q")
    try:
        await wait_for(lambda: running.relay.streams)
        stream = next(iter(running.relay.streams.values()))
        channel = stream.session.listeners[0]
        assert isinstance(channel, ClientChannel)

        # Phase 1: the client lags. Pending deltas are merged into single
        # updates: some update carries more than one delta's text.
        seen = await read_slowly_until_merged(sock, 6.0)
        assert merged_update_in(seen), "no merged update reached the client"
        assert channel.merged > 0

        # Phase 2: the client stops reading. The stream ends for it with
        # slow_client, the connection is dropped, the upstream aborted.
        await asyncio.wait_for(fake.received[0].closed.wait(), 10)
        assert not fake.received[0].finished
        assert channel.closed
        assert channel.error is not None and channel.error.code == "slow_client"
        # Memory stayed bounded: never more than the cap plus the one delta
        # that tipped it over, and the error and end events written after it.
        assert channel.peak_buffered <= cap + 1024, channel.peak_buffered
        await read_to_close(sock, 5)
        await wait_for(lambda: running.relay.active == 0)
    finally:
        sock.close()


async def test_other_streams_unaffected_by_a_slow_client(make_app: Any, settings: Settings,
                                                        fake: FakeUpstream) -> None:
    running: Running = make_app(settings.replace(max_client_buffer=16 * 1024))
    fake.queue(Script.stream(sse_stream(["y" * 500] * 3000), piece=5000, pause=0.001))
    sock = await open_unread_stream(running.port, "/ai/streamChat?question=slow")
    try:
        await asyncio.wait_for(wait_for(lambda: len(fake.received) == 1), 5)
        fake.queue(Script.stream(sse_stream(["fine"] * 20), piece=50, pause=0.001))
        good = await request(running.url("/ai/streamChat?question=good"))
        events = await good.events()
        assert contents(events) == "fine" * 20
        assert events[-1].json == {"reason": "stop"}
        await asyncio.wait_for(fake.received[0].closed.wait(), 10)
    finally:
        sock.close()


async def test_http10_client_gets_the_whole_stream_unchunked(app: Running, fake: FakeUpstream) -> None:
    # The direct writer applies to chunked HTTP/1.1 responses only; an
    # HTTP/1.0 client gets a close-delimited body through Tornado's own path.
    fake.queue(Script.stream(sse_stream(["a", "b", "c"]), piece=30, pause=0.005))
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    writer.write(b"GET /ai/streamChat?question=x HTTP/1.0\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), 5)  # until the server closes
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert body.count(b"event: update\n") == 3
    assert body.rsplit(b"\n\n", 2)[-2].startswith(b"event: end\n")
    assert body.endswith(b'data: {"reason":"stop"}\n\n')
