"""Optional Prometheus metrics for ``ghostwatch run`` (``[metrics] listen``).

Served by prometheus-client's own HTTP server on a private registry, on the address
configured (loopback by default: the figures name accounts). Without ``listen`` every
method is a no-op, so the daemon calls them unconditionally.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Metrics", "parse_listen"]


def parse_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9464" or "[::1]:9464" -> (host, port); raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]"), int(port)


class Metrics:
    """The daemon's figures; a no-op object when ``listen`` is None."""

    def __init__(self, listen: str | None) -> None:
        self.enabled = listen is not None
        self.server: Any = None
        if listen is None:
            return
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.pass_seconds = Histogram(
            "ghostwatch_pass_seconds",
            "Duration of one sync-and-send pass over an account.",
            ["account"],
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.awaiting = Gauge(
            "ghostwatch_threads_awaiting_reply", "Threads whose last word is yours.",
            registry=self.registry,
        )  # fmt: skip
        self.queued = Gauge(
            "ghostwatch_drafts_queued", "Drafts queued or approved, not yet sent.",
            registry=self.registry,
        )  # fmt: skip
        self.sends = Counter(
            "ghostwatch_sends", "Send attempts by outcome.", ["outcome"], registry=self.registry
        )
        self.errors = Counter(
            "ghostwatch_errors", "Failed passes by account.", ["account"], registry=self.registry
        )
        self.listen = parse_listen(listen)

    def start(self) -> None:
        if not self.enabled:
            return
        from prometheus_client import start_http_server

        host, port = self.listen
        self.server, _thread = start_http_server(port, addr=host, registry=self.registry)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def observe_pass(self, account: str, seconds: float, ok: bool, outcomes: list[Any]) -> None:
        if not self.enabled:
            return
        self.pass_seconds.labels(account).observe(seconds)
        if not ok:
            self.errors.labels(account).inc()
        for o in outcomes:
            if o.what in ("sent", "failed", "uncertain", "retry"):
                self.sends.labels(o.what).inc()

    def set_counts(self, awaiting: int, queued: int) -> None:
        if self.enabled:
            self.awaiting.set(awaiting)
            self.queued.set(queued)
