"""A fake OpenAI-compatible streaming upstream for the benchmark, in its own process.

    python -m bench.upstream --port=0     # prints "listening <port>" when ready

Raw asyncio protocol rather than a web framework: it must cost as little CPU as
possible, since it shares two cores with the relay and the load client. Each
``POST .../chat/completions`` streams the deltas its question asks for (see
:mod:`bench.spec`), each written and sent on its own at its scheduled time, with
its send time stamped into its content just before the write. Timers are absolute
(``call_at``), so a late tick does not push every later delta back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time

from .spec import StreamSpec

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n")
# The fields a real provider sends with every chunk, so the relay parses
# payloads of a realistic size (~200 bytes).
CHUNK_PREFIX = ('data: {"id":"chatcmpl-bench0000000000000000","object":"chat.completion.chunk",'
                '"created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench",'
                '"choices":[{"index":0,"delta":{"content":"')
CHUNK_SUFFIX = '"},"logprobs":null,"finish_reason":null}]}\n\n'
FINISH = ('data: {"id":"chatcmpl-bench0000000000000000","object":"chat.completion.chunk",'
          '"created":1700000000,"model":"bench-model","choices":[{"index":0,"delta":{},'
          '"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


def frame(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Stats:
    streams = 0
    finished = 0
    aborted = 0
    deltas = 0


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None
        self.streaming = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.streaming:
            self.stats.aborted += 1
            self.streaming = False

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.streaming:
            return  # pipelining is not something a relay does
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                self.keep_alive = False
        if len(self.buf) < end + 4 + length:
            return
        body = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        try:
            spec = StreamSpec.parse(json.loads(body)["messages"][-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            self._reply_400()
            return
        self._start(spec)

    def _reply_400(self) -> None:
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
        self.transport.close()

    def _start(self, spec: StreamSpec) -> None:
        assert self.transport is not None
        self.stats.streams += 1
        self.streaming = True
        head = HEAD + (b"\r\n" if self.keep_alive else b"Connection: close\r\n\r\n")
        self.transport.write(head)
        loop = asyncio.get_running_loop()
        # loop.time() is CLOCK_MONOTONIC, the clock spec.at is given in.
        t0 = max(loop.time(), spec.at)
        if t0 > loop.time():
            self.timer = loop.call_at(t0, self._send, spec, 1, t0, loop)
        else:
            self._send(spec, 1, t0, loop)

    def _send(self, spec: StreamSpec, seq: int, t0: float,
              loop: asyncio.AbstractEventLoop) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        stamp = time.monotonic_ns() // 1000
        text = f"d{seq}@{stamp} " + "x" * spec.pad
        transport.write(frame((CHUNK_PREFIX + text + CHUNK_SUFFIX).encode()))
        self.stats.deltas += 1
        if seq < spec.deltas:
            self.timer = loop.call_at(t0 + seq * spec.every, self._send, spec, seq + 1, t0, loop)
            return
        transport.write(frame(FINISH.encode()) + b"0\r\n\r\n")
        self.streaming = False
        self.stats.finished += 1
        if not self.keep_alive:
            transport.close()


async def serve(port: int, host: str) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamConnection(stats), host, port,
                                      backlog=4096)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"streams": stats.streams, "finished": stats.finished,
                      "aborted": stats.aborted, "deltas": stats.deltas,
                      "cpu": ru.ru_utime + ru.ru_stime}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(args.port, args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
