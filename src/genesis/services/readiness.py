"""Readiness: can this process serve now? The database, Redis (when configured) and the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from genesis.audit import AuditRecorder, AuditStore

Probe = Callable[[], Awaitable[bool]]


async def check_readiness(
    *, database: Probe, redis: Probe | None, recorder: AuditRecorder, audit_store: Callable[[], AuditStore | None],
    timeout_seconds: float,
) -> dict[str, str]:
    """State of each backing service: ``"ok"`` or a short reason."""
    checks = {"database": "ok" if await database() else "unreachable"}
    if redis is not None:
        checks["redis"] = "ok" if await redis() else "unreachable"
    checks["audit"] = "ok" if await _audit_ready(recorder, audit_store, timeout_seconds) else "unavailable"
    return checks


async def _audit_ready(
    recorder: AuditRecorder, audit_store: Callable[[], AuditStore | None], timeout_seconds: float
) -> bool:
    """The writer runs (reconnecting if due) and the audit store answers."""
    if not await recorder.ready():
        return False
    store = audit_store()
    if store is None:
        return False
    try:
        await asyncio.wait_for(asyncio.to_thread(store.head), timeout=timeout_seconds)
    except Exception:
        return False
    return True
