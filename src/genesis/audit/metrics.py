"""Prometheus metrics of the audit writer and the log pipeline (default registry).

Defined once per process; ``_get`` returns the already registered collector when
the module is reloaded or a test registers the same name again.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

C = TypeVar("C", Counter, Gauge, Histogram)


def _get(kind: type[C], name: str, doc: str, **kwargs: Any) -> C:
    try:
        return kind(name, doc, **kwargs)
    except ValueError:  # already registered in this process
        names = getattr(REGISTRY, "_names_to_collectors", {})
        existing = names.get(name) or names.get(name.removesuffix("_total"))
        if not isinstance(existing, kind):
            raise
        return existing


AUDIT_QUEUE_DEPTH = _get(Gauge, "genesis_audit_queue_depth", "Audit events submitted and not yet committed.")
AUDIT_COMMIT_SECONDS = _get(
    Histogram,
    "genesis_audit_commit_seconds",
    "Time to commit one audit batch (lock, hash, insert, fsync).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
AUDIT_BATCH_SIZE = _get(
    Histogram,
    "genesis_audit_batch_size",
    "Audit events per committed batch.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
AUDIT_HEAD_SEQ = _get(Gauge, "genesis_audit_chain_head_seq", "Sequence number of the last committed audit event.")
AUDIT_FAILURES = _get(
    Counter, "genesis_audit_write_failures_total", "Audit events refused because their batch failed to commit."
)
AUDIT_CHECKPOINTS = _get(
    Counter, "genesis_audit_checkpoints_total", "Signed checkpoints written, by reason.", labelnames=("reason",)
)
AUDIT_HEADS = _get(
    Counter, "genesis_audit_heads_total", "Signed tree heads made by this process, by reason.", labelnames=("reason",)
)
AUDIT_HEAD_SIZE = _get(Gauge, "genesis_audit_head_size", "Tree size of the last signed tree head this process made.")
AUDIT_HEAD_REFUSALS = _get(
    Counter, "genesis_audit_head_refusals_total",
    "Signed tree heads refused because the tree does not extend the latest signed head (rewritten or cut trail).",
)
LOG_SINK_ERRORS = _get(
    Counter, "genesis_log_sink_errors_total", "Failed writes of a log batch, by sink.", labelnames=("sink",)
)
LOG_DROPPED = _get(
    Counter,
    "genesis_log_dropped_total",
    "Log records dropped (queue full or sink failing), by reason.",
    labelnames=("reason",),
)
AUDIT_CHAIN_VERIFIED = _get(
    Gauge, "genesis_audit_chain_verified", "1 when the last scheduled verification found the chain intact, else 0."
)
AUDIT_VERIFIED_SEQ = _get(Gauge, "genesis_audit_chain_verified_seq", "Last sequence number verified on schedule.")
AUDIT_CHECKPOINT_AGE = _get(
    Gauge, "genesis_audit_chain_last_checkpoint_age_seconds",
    "Age of the newest signed tree head (or, on a trail without heads, checkpoint) at the last check.",
)
# Unknown until a scheduled check has run (or when checks are off): NaN, so that an alert on
# "verified == 0" fires for a broken chain only, not for a worker that has not looked yet.
for _gauge in (AUDIT_CHAIN_VERIFIED, AUDIT_VERIFIED_SEQ, AUDIT_CHECKPOINT_AGE):
    _gauge.set(float("nan"))
