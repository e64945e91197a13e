"""The benchmark's load client, in its own process.

    python -m bench.client --url=http://127.0.0.1:PORT --mode=relay --streams=1000 ...

Opens ``--streams`` SSE streams spread evenly over ``--ramp`` seconds from
``--start-at`` (a CLOCK_MONOTONIC time, so several client processes start
together), and for every stream checks that each delta arrives exactly once and
in order. Delivery latency is the receive time minus the upstream's send stamp.
Prints one JSON object on stdout.

Raw asyncio protocols, and only the bytes around a marker are looked at, so the
client stays cheap; it reports its own CPU time and how late its event loop ran
so a reader can tell whether the client, not the server, was the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from dataclasses import replace
from urllib.parse import quote

from .spec import MARKER, StreamSpec

END_STOP = b'data: {"reason":"stop"'


class Result:
    def __init__(self) -> None:
        self.latencies_us: list[int] = []
        self.first_byte_us: list[int] = []
        self.first_delta_us: list[int] = []
        self.ok = 0
        self.lost = 0
        self.out_of_order = 0
        self.errors: dict[str, int] = {}
        self.heartbeats = 0
        self.merged = 0
        self.deltas = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class StreamConnection(asyncio.Protocol):
    def __init__(self, client: LoadClient, opened_ns: int, request: bytes) -> None:
        self.client = client
        self.request = request
        self.result = client.result
        self.opened_ns = opened_ns
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.head_done = False
        self.seen_first_delta = False
        self.next_seq = 1
        self.ended = False
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now_us = time.monotonic_ns() // 1000
        buf = self.buf + data
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.head_done = True
            self.result.first_byte_us.append(now_us - self.opened_ns // 1000)
            if not buf.startswith(b"HTTP/1.1 200"):
                self._finish("http_" + buf[9:12].decode("latin-1"))
                return
            buf = buf[end + 4:]
        # Only whole events are examined: a marker never straddles "\n\n".
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.buf = buf
            return
        events, self.buf = buf[:cut + 2], buf[cut + 2:]
        result = self.result
        if b": heartbeat" in events:
            result.heartbeats += events.count(b": heartbeat")
        for block in events.split(b"\n\n"):
            markers = MARKER.findall(block)
            if len(markers) > 1:
                result.merged += 1
            for seq_b, stamp_b in markers:
                seq = int(seq_b)
                if not self.seen_first_delta:
                    self.seen_first_delta = True
                    result.first_delta_us.append(now_us - self.opened_ns // 1000)
                if seq != self.next_seq:
                    result.out_of_order += 1
                self.next_seq = max(self.next_seq, seq + 1)
                result.deltas += 1
                result.latencies_us.append(now_us - int(stamp_b))
        if b"event: error" in events:
            self._finish("error_event")
        elif b"data: [DONE]" in events:
            self._finish(None)
        elif b"event: end" in events:
            end = events[events.index(b"event: end"):]
            self._finish(None if END_STOP in end.split(b"\n\n", 1)[0] else "end_not_stop")

    def _finish(self, error: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        lost = self.client.spec.deltas - (self.next_seq - 1)
        if error is None and lost == 0:
            self.result.ok += 1
        elif error is None:
            self.result.error("incomplete")
        else:
            self.result.error(error)
        self.result.lost += max(0, lost)
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended:
            self._finish("connection_lost")


class LoadClient:
    def __init__(self, url: str, mode: str, spec: StreamSpec, offset: int = 0,
                 total: int = 1) -> None:
        self.offset = offset  # this process's first stream in the whole phase
        self.total = total  # streams in the whole phase, over all client processes
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.host_port = host_port
        self.mode = mode
        self.spec = spec
        self.result = Result()

    def request_for(self, spec: StreamSpec) -> bytes:
        host_port = self.host_port
        if self.mode == "direct":
            body = json.dumps({"model": "bench", "stream": True,
                               "messages": [{"role": "user", "content": spec.question()}]}).encode()
            return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host_port}\r\n"
                    f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                    f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        return (f"GET /ai/streamChat?question={quote(spec.question())} HTTP/1.1\r\n"
                f"Host: {host_port}\r\nAccept: text/event-stream\r\n"
                f"Connection: close\r\n\r\n").encode()

    async def one(self, spec: StreamSpec) -> None:
        loop = asyncio.get_running_loop()
        opened = time.monotonic_ns()
        request = self.request_for(spec)
        try:
            _, proto = await loop.create_connection(
                lambda: StreamConnection(self, opened, request), self.host, self.port)
        except OSError as exc:
            self.result.error(f"connect_{type(exc).__name__}")
            self.result.lost += self.spec.deltas
            return
        await proto.done

    async def run(self, streams: int, ramp: float, start_at: float, timeout: float) -> dict:
        loop = asyncio.get_running_loop()
        lag = LagMonitor(loop)
        # loop.time() is CLOCK_MONOTONIC, the clock start_at is given in.
        base = max(start_at, loop.time())
        tasks: list[asyncio.Future[None]] = []

        def launch(spec: StreamSpec) -> None:
            tasks.append(asyncio.ensure_future(self.one(spec)))

        spec = self.spec
        for i in range(streams):
            if self.spec.at:
                # Stagger the first deltas evenly over one stream's length,
                # so deltas flow steadily and streams end at a steady rate,
                # as they would in the steady state, not all in one second.
                span = self.spec.every * self.spec.deltas
                spec = replace(self.spec, at=self.spec.at + span * (i + self.offset) / self.total)
            loop.call_at(base + (ramp * i / streams if streams else 0), launch, spec)
        deadline = max(base + ramp, self.spec.at) + timeout
        while len(tasks) < streams and loop.time() < deadline:
            await asyncio.sleep(0.05)
        pending: set[asyncio.Future[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
        for task in pending:
            task.cancel()
        r = self.result
        if pending or len(tasks) < streams:
            r.errors["timeout"] = len(pending) + streams - len(tasks)
        lag.stop()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "streams": streams, "ok": r.ok, "lost": r.lost, "out_of_order": r.out_of_order,
            "errors": r.errors, "deltas": r.deltas, "heartbeats": r.heartbeats,
            "merged": r.merged, "latencies_us": r.latencies_us,
            "first_byte_us": r.first_byte_us, "first_delta_us": r.first_delta_us,
            "cpu": ru.ru_utime + ru.ru_stime, "max_rss_kb": ru.ru_maxrss,
            "loop_lag_us": lag.samples,
        }


class LagMonitor:
    """How late a 10 ms tick runs: a busy client would show it here."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float = 0.01) -> None:
        self.loop = loop
        self.every = every
        self.samples: list[int] = []
        self.handle = loop.call_later(every, self._tick, loop.time() + every)

    def _tick(self, due: float) -> None:
        self.samples.append(int((self.loop.time() - due) * 1e6))
        self.handle = self.loop.call_later(self.every, self._tick, self.loop.time() + self.every)

    def stop(self) -> None:
        self.handle.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["direct", "relay"], required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--deltas", type=int, default=10)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--pad", type=int, default=0)
    parser.add_argument("--ramp", type=float, default=0.0)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--first-at", type=float, default=0.0,
                        help="CLOCK_MONOTONIC time of the first deltas (0: at once)")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--total", type=int, default=0)
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    client = LoadClient(args.url, args.mode,
                        StreamSpec(args.deltas, args.every, args.pad, args.first_at),
                        args.offset, args.total or args.streams)
    out = asyncio.run(client.run(args.streams, args.ramp, args.start_at, args.timeout))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
