"""Graceful shutdown: stop accepting, let running streams finish, end the rest.

On the first SIGTERM or SIGINT:

1. **Stop accepting.** The listening sockets close (the proxy, or the other
   workers sharing the port, take new connections); a request that still
   arrives on a kept-alive connection is refused with 503 ``shutting_down``
   and ``Retry-After``.
2. **Drain.** Running streams may finish by themselves for up to
   ``drain_timeout`` seconds.
3. **End the rest.** Each remaining stream's clients get a ``retry:`` hint --
   jittered, so that thousands of clients do not come back in the same
   millisecond -- and ``end`` with reason ``shutdown``; its upstream transfer is
   aborted (it would be paid for and never read).
4. **Flush.** Wait (briefly, bounded) until those last bytes have left, so
   closing the connections does not cut them off.

A second signal during the drain skips the rest of the wait: an operator's
impatient second Ctrl-C ends the streams at once, still cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from tornado.tcpserver import TCPServer

from .relay import Relay, RelayedStream
from .session import Listener

log = logging.getLogger("tornado_sse.shutdown")


@dataclass(frozen=True)
class DrainReport:
    drained: int  # streams that finished by themselves during the drain
    ended: int  # streams ended with reason "shutdown"
    seconds: float


class GracefulShutdown:
    def __init__(self, relay: Relay, servers: Sequence[TCPServer], *, drain_timeout: float,
                 retry_ms: int, flush_timeout: float = 2.0) -> None:
        self.relay = relay
        self.servers = servers
        self.drain_timeout = drain_timeout
        self.retry_ms = retry_ms
        self.flush_timeout = flush_timeout
        self.requested = asyncio.Event()
        self._hurry = asyncio.Event()
        self._idle = asyncio.Event()
        self._flushes: list[Awaitable[None]] = []
        self._drained = 0

    def signal(self) -> None:
        """Signal handler: the first call starts the shutdown, the second hurries it."""
        if not self.requested.is_set():
            self.requested.set()
        elif not self._hurry.is_set():
            log.warning("second signal: ending %d streams now", self.relay.active)
            self._hurry.set()

    def retry_hint(self) -> int:
        """The configured retry delay plus up to as much again, at random."""
        return self.retry_ms + random.randint(0, self.retry_ms)

    async def run(self) -> DrainReport:
        started = time.monotonic()
        self.relay.accepting = False
        for server in self.servers:
            server.stop()
        self.relay.on_stream_end.append(self._stream_ended)
        self.relay.on_listener_left.append(self._listener_left)
        if self.relay.active:
            log.info("shutting down: %d streams may finish within %gs (signal again to end them now)",
                     self.relay.active, self.drain_timeout)
            await self._wait_drained()
        remaining = list(self.relay.streams.values())
        if remaining:
            log.info("ending %d streams with reason 'shutdown'", len(remaining))
        for stream in remaining:
            stream.cancel("shutdown", cause="shutdown", retry_ms=self.retry_hint())
        if self._flushes:
            # Responses to the ended streams (and to streams that finished
            # just before) are still being written: let them go out.
            futures = [asyncio.ensure_future(f) for f in self._flushes]
            await asyncio.wait(futures, timeout=self.flush_timeout)
        report = DrainReport(self._drained, len(remaining), time.monotonic() - started)
        log.info("drained: %d streams finished, %d ended by shutdown, %.1fs",
                 report.drained, report.ended, report.seconds)
        return report

    async def _wait_drained(self) -> None:
        waiters = [asyncio.ensure_future(self._idle.wait()), asyncio.ensure_future(self._hurry.wait())]
        try:
            await asyncio.wait(waiters, timeout=self.drain_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # -- relay hooks -----------------------------------------------------------

    def _stream_ended(self, stream: RelayedStream) -> None:
        outcome = stream.session.outcome
        if outcome is None or outcome.reason != "shutdown":
            self._drained += 1
        if not self.relay.streams:
            self._idle.set()

    def _listener_left(self, stream: RelayedStream, listener: Listener) -> None:
        finished = getattr(listener, "finished", None)
        if finished is not None:
            self._flushes.append(finished)
