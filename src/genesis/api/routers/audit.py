"""The audit trail over HTTP: query, read, verify and export (scope ``audit:read``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from genesis.api.deps import RuntimeDep, allow
from genesis.api.request_audit import request_audit
from genesis.api.schemas import AUTHED_ERRORS, Timestamp, problem_responses
from genesis.audit import AuditStore
from genesis.errors import Unavailable
from genesis.runtime import Runtime
from genesis.services import audit_trail
from genesis.services.auth import Principal
from genesis.timeutil import to_us

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Annotated[Principal, allow("audit:read", limit="audit")]


class AuditEventRead(BaseModel):
    seq: int
    event_id: str
    timestamp: str
    occurred_at_us: int
    level: str
    action: str
    outcome: str
    actor: str
    source_ip: str | None
    user_agent: str | None
    method: str | None
    path: str | None
    status: int | None
    correlation_id: str
    request_id: str | None
    message: str
    metadata: dict[str, Any]
    prev_hash: str
    hash: str


class AuditEventPage(BaseModel):
    events: list[AuditEventRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class VerifyRead(BaseModel):
    ok: bool
    events_checked: int
    last_seq: int
    head_hash: str
    checkpoints_matched: int
    covered_seq: int
    signatures_checked: bool
    kind: str | None = None
    first_bad_seq: int | None = None
    detail: str = ""


def _store(runtime: Runtime) -> AuditStore:
    store = runtime.audit.store
    if store is None:
        raise Unavailable("the audit store is unavailable", component="audit")
    return store


@router.get("/events", name="audit.query", response_model=AuditEventPage, responses=AUTHED_ERRORS)
async def query(
    runtime: RuntimeDep, _: Auditor,
    start: Annotated[Timestamp | None, Query(description="Inclusive (RFC 3339).")] = None,
    end: Annotated[Timestamp | None, Query(description="Exclusive (RFC 3339).")] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=128)] = None,
    outcome: Annotated[Literal["success", "failure", "denied", "started"] | None, Query()] = None,
    level: Annotated[Literal["DEBUG", "INFO", "AUDIT", "WARNING", "ERROR"] | None, Query()] = None,
    correlation_id: Annotated[str | None, Query(max_length=128)] = None,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
) -> AuditEventPage:
    """Audit events matching every given filter, one page at a time (by sequence number)."""
    page = await asyncio.to_thread(
        audit_trail.query_events, _store(runtime), start_us=to_us(start) if start else None,
        end_us=to_us(end) if end else None, actor=actor, action=action, outcome=outcome, level=level,
        correlation_id=correlation_id, cursor=cursor, limit=limit, order=order,
    )
    return AuditEventPage(events=[AuditEventRead(**e) for e in page.events], next_cursor=page.next_cursor)


@router.get("/events/{event_id}", name="audit.read", response_model=AuditEventRead,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def read(event_id: Annotated[str, Path(max_length=64)], runtime: RuntimeDep, _: Auditor) -> AuditEventRead:
    """One audit event by id."""
    return AuditEventRead(**await asyncio.to_thread(audit_trail.get_event, _store(runtime), event_id))


@router.get("/verify", name="audit.verify", response_model=VerifyRead, responses=AUTHED_ERRORS)
async def verify(request: Request, runtime: RuntimeDep, _: Auditor) -> VerifyRead:
    """Verify the hash chain and the signed checkpoints; names the first broken sequence number."""
    settings = runtime.settings
    keys = audit_trail.trusted_public_keys(settings.data_dir, settings.audit_public_keys)
    report = await asyncio.to_thread(
        audit_trail.verify, _store(runtime),
        hmac_key=settings.audit_hmac_key.get_secret_value() if settings.audit_hmac_key else None, public_keys=keys,
    )
    request_audit(request).metadata.update({"ok": report.ok, "first_bad_seq": report.first_bad_seq})
    return VerifyRead(**report.to_dict())


@router.get("/export", name="audit.export", responses={
    **AUTHED_ERRORS, 200: {"description": "NDJSON (offline-verifiable, see docs/audit-format.md) or CSV",
                           "content": {"application/x-ndjson": {}, "text/csv": {}}}})
async def export(
    request: Request, runtime: RuntimeDep, _: Auditor,
    format: Annotated[Literal["ndjson", "csv"], Query()] = "ndjson",
    start: Annotated[Timestamp | None, Query(description="CSV only: inclusive start.")] = None,
    end: Annotated[Timestamp | None, Query(description="CSV only: exclusive end.")] = None,
) -> StreamingResponse:
    """Stream the audit trail without loading it into memory."""
    store = _store(runtime)
    request_audit(request).metadata["format"] = format
    if format == "csv":
        body = audit_trail.stream_csv(store, start_us=to_us(start) if start else None,
                                      end_us=to_us(end) if end else None)
        return StreamingResponse(body, media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
    keys = audit_trail.trusted_public_keys(runtime.settings.data_dir, runtime.settings.audit_public_keys)
    return StreamingResponse(audit_trail.stream_ndjson(store, public_keys=keys), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit.ndjson"'})
