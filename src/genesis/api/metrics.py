"""Prometheus metrics of the HTTP layer."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from genesis.runtime import Runtime

REQUESTS = Counter("genesis_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"])
REQUEST_LATENCY = Histogram(
    "genesis_http_request_duration_seconds", "HTTP request latency by route.", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter("genesis_rate_limit_refusals_total", "Requests refused by a rate limit.", ["limit"])

# Push: what this worker's hub holds, read at each scrape (Hub.stats), and what publishing lost.
PUSH_HUB = Gauge("genesis_push_hub", "This worker's push hub: connections, channels, subscriptions, retained "
                 "messages and bytes.", ["what"])
PUSH_PUBLISH_FAILURES = Gauge("genesis_push_publish_failures", "Notices this worker could not publish on streams "
                              "(Redis away) since it started.")
PUSH_AUDIT_DROPPED = Gauge("genesis_push_audit_dropped", "Committed audit events not published on streams because "
                           "the feed was too far behind, since this worker started.")
_HUB_STATS = ("connections", "channels", "subscriptions", "retained_messages", "retained_bytes")


def watch_push(runtime: Runtime) -> None:
    """Export the push figures of ``runtime`` (the latest one started in this process)."""
    # Weak references: a test's finished runtime must not stay alive through the registry.
    hub, publisher, feed = weakref.ref(runtime.hub), weakref.ref(runtime.publisher), weakref.ref(runtime.audit_feed)

    def stat(name: str) -> float:
        current = hub()
        return float(current.stats()[name]) if current is not None else 0.0

    for name in _HUB_STATS:
        PUSH_HUB.labels(name).set_function(lambda name=name: stat(name))  # type: ignore[misc]
    PUSH_PUBLISH_FAILURES.set_function(lambda: float(p.failures) if (p := publisher()) is not None else 0.0)
    PUSH_AUDIT_DROPPED.set_function(lambda: float(f.dropped) if (f := feed()) is not None else 0.0)
