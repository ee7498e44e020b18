"""Prometheus metrics of the HTTP layer."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("genesis_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"])
REQUEST_LATENCY = Histogram(
    "genesis_http_request_duration_seconds", "HTTP request latency by route.", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter("genesis_rate_limit_refusals_total", "Requests refused by a rate limit.", ["limit"])
