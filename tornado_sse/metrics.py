"""Prometheus metrics, observed at the relay's hook points.

Nothing here runs per delta: a stream's deltas, bytes, duration and time to
first token are added once when it ends; a client connection's bytes and
heartbeats once when it leaves; a refusal once per refused request. Only the
active-streams gauge moves at both ends of a stream.

**Several worker processes.** A scrape of ``/metrics`` lands on whichever
worker accepts it, so one worker's own numbers would be a random fraction of
the truth. We use prometheus_client's *multiprocess mode*: every worker writes
its values to memory-mapped files in one directory (``PROMETHEUS_MULTIPROC_DIR``)
and ``/metrics`` on any worker reads and sums the files of all of them. Counters
and histograms sum over every worker that ever ran (a restarted worker's totals
are not lost); gauges use ``livesum``, which sums live workers only -- a worker
that exits cleanly removes its gauge files, and files of a worker that died
without cleaning up are dropped at the next scrape. One process needs none of
this and uses an ordinary in-memory registry (plus the process collector:
memory, CPU, open files).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from .relay import ABORT_CAUSES
from .session import Listener
from .stream_stats import DeliveryStats, summarize

if TYPE_CHECKING:
    from .relay import Relay, RelayedStream

ENV = "PROMETHEUS_MULTIPROC_DIR"

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def enable_multiprocess(path: str | None = None) -> str:
    """Switch this process to multiprocess mode; call once in the parent, before
    forking workers and before any :class:`Metrics` exists.

    Uses ``path``, else ``$PROMETHEUS_MULTIPROC_DIR``, else a new temporary
    directory, and empties it: files left by an earlier run would be summed in.
    """
    path = path or os.environ.get(ENV) or tempfile.mkdtemp(prefix="tornado_sse-metrics-")
    os.makedirs(path, exist_ok=True)
    for name in glob.glob(os.path.join(path, "*.db")):
        os.remove(name)
    os.environ[ENV] = path
    _use_multiprocess_values()
    return path


def cleanup_multiprocess(path: str) -> None:
    """Remove a directory made by :func:`enable_multiprocess` (parent, at exit)."""
    shutil.rmtree(path, ignore_errors=True)


def _use_multiprocess_values() -> None:
    # prometheus_client picks where values live once, at import, from the
    # environment; we decide after parsing flags, so switch it here -- once:
    # a second switch would open the same files twice in one process.
    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Metrics:
    """The relay's metrics. One per server; attach it to the relay."""

    def __init__(self, max_streams: int | None = None) -> None:
        self.multiprocess_dir = os.environ.get(ENV) or None
        if self.multiprocess_dir:
            os.makedirs(self.multiprocess_dir, exist_ok=True)
            _use_multiprocess_values()
        # A registry of our own (never the global default), so tests may
        # build many servers in one process.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active = Gauge("tornado_sse_streams_active", "Streams being relayed now.",
                            registry=r, multiprocess_mode="livesum")
        self.capacity = Gauge("tornado_sse_streams_capacity",
                              "Most streams admitted at once (--max-streams).",
                              registry=r, multiprocess_mode="livesum")
        self.started = Counter("tornado_sse_streams_started", "Streams started.", registry=r)
        self.finished = Counter(
            "tornado_sse_streams_finished",
            "Streams ended, by end reason and error code (empty without error).",
            ["reason", "code"], registry=r)
        self.ttft = Histogram("tornado_sse_upstream_ttft_seconds",
                              "Upstream request to first token.", registry=r, buckets=TTFT_BUCKETS)
        self.duration = Histogram("tornado_sse_stream_duration_seconds",
                                  "Upstream request to end of stream.", registry=r,
                                  buckets=DURATION_BUCKETS)
        self.deltas = Counter("tornado_sse_deltas", "Text deltas relayed.", registry=r)
        self.upstream_bytes = Counter("tornado_sse_upstream_bytes",
                                      "Body bytes received from the upstream.", registry=r)
        self.client_bytes = Counter("tornado_sse_client_bytes",
                                    "Event-stream bytes written to clients.", registry=r)
        self.heartbeats = Counter("tornado_sse_heartbeats", "Heartbeat comments sent.", registry=r)
        self.merged = Counter("tornado_sse_merged_updates",
                              "Updates merged because a client lagged.", registry=r)
        self.aborts = Counter("tornado_sse_upstream_aborts",
                              "Upstream transfers cut short, by cause.", ["cause"], registry=r)
        self.refused = Counter("tornado_sse_requests_refused",
                               "Requests answered with an HTTP error status before any stream "
                               "(503 at capacity or shutting down, 429 rate limited, 4xx bad input).",
                               ["status"], registry=r)
        for cause in ABORT_CAUSES:
            self.aborts.labels(cause)
        for status in ("429", "503"):
            self.refused.labels(status)
        if max_streams is not None:
            self.capacity.set(max_streams)
        if not self.multiprocess_dir:
            ProcessCollector(registry=r)

    # -- hooks -----------------------------------------------------------------

    def attach(self, relay: Relay) -> None:
        relay.on_stream_open.append(self.stream_opened)
        relay.on_stream_end.append(self.stream_ended)
        relay.on_listener_left.append(self.listener_left)

    def stream_opened(self, stream: RelayedStream) -> None:
        self.started.inc()
        self.active.inc()

    def stream_ended(self, stream: RelayedStream) -> None:
        s = summarize(stream)
        self.active.dec()
        self.finished.labels(s.reason, s.code).inc()
        self.duration.observe(s.duration)
        if s.ttft is not None:
            self.ttft.observe(s.ttft)
        if s.deltas:
            self.deltas.inc(s.deltas)
        if s.upstream_bytes:
            self.upstream_bytes.inc(s.upstream_bytes)
        if s.abort_cause is not None:
            self.aborts.labels(s.abort_cause).inc()

    def listener_left(self, stream: RelayedStream, listener: Listener) -> None:
        if isinstance(listener, DeliveryStats):
            self.client_bytes.inc(listener.bytes_sent)
            self.heartbeats.inc(listener.heartbeats)
            self.merged.inc(listener.merged)

    def request_refused(self, status: int) -> None:
        self.refused.labels(str(status)).inc()

    # -- exposition ------------------------------------------------------------

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (body, content type) in the format ``accept`` asks for
        (Prometheus text 0.0.4 by default, or OpenMetrics): this process's
        metrics, or with several workers all of theirs summed."""
        encoder, content_type = choose_encoder(accept)
        if not self.multiprocess_dir:
            return encoder(self.registry), content_type
        self._drop_dead_workers()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return encoder(registry), content_type

    def _drop_dead_workers(self) -> None:
        # A worker killed without cleanup leaves its live gauges behind.
        assert self.multiprocess_dir is not None
        for name in glob.glob(os.path.join(self.multiprocess_dir, "gauge_live*.db")):
            match = _LIVE_GAUGE_FILE.search(name)
            if match and not _pid_alive(int(match.group(1))):
                mark_process_dead(int(match.group(1)), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """This worker is exiting: its live gauges leave the sum."""
        if self.multiprocess_dir:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]
