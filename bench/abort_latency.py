"""How fast an abort closes the upstream socket, seen from the upstream's side.

    python -m bench.abort_latency [--runs=20]

A raw-socket "upstream" on loopback accepts each request, then either says
nothing (the transfer waits for headers) or sends the head and one chunk (the
transfer sits between chunks). We call ``UpstreamTransfer.abort()`` and time
until the upstream's ``recv`` returns EOF. Prints median and max per state.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time

from tornado_sse.errors import StreamError
from tornado_sse.upstream import UpstreamClient

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\ndata:\r\n")


class _Sink:
    def on_data(self, chunk: bytes) -> None:
        pass

    def on_done(self, error: StreamError | None) -> None:
        pass


async def measure(runs: int) -> dict[str, list[float]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    loop = asyncio.get_running_loop()
    client = UpstreamClient(f"http://127.0.0.1:{server.getsockname()[1]}/v1")
    results: dict[str, list[float]] = {"waiting for headers": [], "between chunks": []}
    try:
        for i in range(2 * runs):
            state = "between chunks" if i % 2 else "waiting for headers"
            transfer = client.open(b"{}", _Sink())
            conn, _ = await loop.sock_accept(server)
            await loop.sock_recv(conn, 65536)
            if state == "between chunks":
                await loop.sock_sendall(conn, HEAD)
                await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            transfer.abort()
            eof = await asyncio.wait_for(loop.sock_recv(conn, 100), 5)
            results[state].append((time.perf_counter() - t0) * 1000)
            assert eof == b"", eof
            conn.close()
    finally:
        client.close()
        server.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    for state, times in asyncio.run(measure(args.runs)).items():
        print(f"{state:20s} n={len(times)} median={statistics.median(times):.3f} ms "
              f"max={max(times):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
