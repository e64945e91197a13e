"""Operations endpoints: ``/healthz`` for probes, ``/metrics`` for Prometheus."""

from __future__ import annotations

from tornado_sse.metrics import Metrics
from tornado_sse.relay import Relay

from .base import JSONErrorHandler


class HealthHandler(JSONErrorHandler):
    """200 while the process serves; 503 once it is draining for shutdown, so a
    load balancer stops sending new streams before the listener closes."""

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        if not self.relay.accepting:
            self.set_status(503)
            self.finish({"status": "draining", "streams": self.relay.active})
            return
        self.finish({"status": "ok", "streams": self.relay.active})

    def head(self) -> None:
        self.set_status(200 if self.relay.accepting else 503)
        self.finish()


class MetricsHandler(JSONErrorHandler):
    """Prometheus text format; with several workers, the sum over all of them."""

    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        body, content_type = self.metrics.render(self.request.headers.get("Accept", ""))
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)
