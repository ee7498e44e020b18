"""Liveness and readiness."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from genesis.api.deps import RuntimeDep, public
from genesis.api.schemas import problem_responses
from genesis.errors import Unavailable
from genesis.services.readiness import check_readiness
from genesis.storage.database import ping

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    timestamp: datetime


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/health", name="health", response_model=Health, dependencies=[public("health")],
            responses=problem_responses(429, 503))
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="healthy", timestamp=datetime.now(UTC))


@router.get("/ready", name="ready", response_model=Readiness, dependencies=[public("health")],
            responses=problem_responses(429, 503))
async def ready(runtime: RuntimeDep) -> Readiness:
    """Readiness: the database, Redis (when configured) and the audit writer can serve."""
    checks = await check_readiness(
        database=functools.partial(ping, runtime.engine),
        redis=runtime.limiter.ping if runtime.settings.redis_url else None,
        recorder=runtime.recorder, audit_store=lambda: runtime.audit.store,
        timeout_seconds=runtime.settings.database_timeout_seconds,
    )
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        raise Unavailable(f"not ready: {', '.join(failed)} unavailable", component=",".join(failed), retry_after=5)
    return Readiness(status="ready", checks=checks)
