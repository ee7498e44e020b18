"""The audit trail over HTTP (scope ``audit:read``): query, read, verify, export, signed tree heads and proofs.

The tree endpoints follow what Certificate Transparency and Tessera clients expect where it fits:
``GET /audit/checkpoint`` is the latest signed head as a C2SP checkpoint note (``text/plain``), the
proofs use RFC 6962's JSON names (``leaf_index``, ``audit_path``, ``consistency``) with base64
hashes. ``docs/audit-format.md`` section 12 specifies every path and shape.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from genesis.api.deps import RecordIntent, RuntimeDep, allow
from genesis.api.request_audit import request_audit
from genesis.api.schemas import AUTHED_ERRORS, Timestamp, problem_responses
from genesis.audit import AuditStore
from genesis.errors import Unavailable
from genesis.runtime import Runtime
from genesis.services import audit_trail
from genesis.services.auth import Principal
from genesis.timeutil import to_us

router = APIRouter(prefix="/audit", tags=["audit"])
MAX_SIZE = 2**62  # tree sizes and seqs: far beyond any trail, and within every database's 64-bit integers
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
    checkpoints_matched: int = Field(description="Signed tree heads and chain checkpoints the events matched.")
    covered_seq: int = Field(description="The largest seq a verified signature vouches for.")
    signatures_checked: bool
    kind: str | None = None
    first_bad_seq: int | None = None
    detail: str = ""
    root: str = Field("", description="Merkle tree root of the first last_seq events (hex).")


class HeadRead(BaseModel):
    origin: str = Field(description="The log's name (the checkpoint's first line).")
    tree_size: int = Field(description="Events the head covers: seq 1 to tree_size.")
    sha256_root_hash: str = Field(description="The Merkle tree root, standard base64.")
    note: str = Field(description="The signed checkpoint (C2SP signed note): what a client verifies.")
    timestamp: str
    reason: str = Field(description="Why it was made: periodic, startup, shutdown, export, archive-boundary, "
                                    "on-demand (informative, not signed).")


class InclusionRead(BaseModel):
    leaf_index: int = Field(description="seq - 1.")
    tree_size: int
    seq: int
    leaf_input: str | None = Field(description="The event's canonical bytes (docs/audit-format.md section 2), "
                                               "base64: the leaf data; null once archived.")
    leaf_hash: str | None = Field(description="SHA-256(0x00 || leaf_input), base64; null once archived.")
    audit_path: list[str] = Field(description="RFC 9162 inclusion proof, base64 hashes from the leaf up.")
    event: AuditEventRead | None = Field(description="The event (null once archived: the proof still holds).")
    hash: str | None = Field(description="The event's chain hash.")


class ConsistencyRead(BaseModel):
    first: int
    second: int
    consistency: list[str] = Field(description="RFC 9162 consistency proof, base64 hashes.")


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
    """Verify the chain, the Merkle tree and the signed heads; names the first broken sequence number."""
    settings = runtime.settings
    keys = await asyncio.to_thread(audit_trail.trusted_keys, settings.data_dir, settings.audit_log_origin,
                                   settings.audit_public_keys)
    report = await asyncio.to_thread(
        audit_trail.verify, _store(runtime),
        hmac_key=settings.audit_hmac_key.get_secret_value() if settings.audit_hmac_key else None, keys=keys,
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
    proofs: Annotated[bool, Query(description="NDJSON only: each event with its inclusion proof in the tree of "
                                              "the head the export ends with.")] = False,
) -> StreamingResponse:
    """Stream the audit trail without loading it into memory; NDJSON ends with a signed head of its last event."""
    store = _store(runtime)
    request_audit(request).metadata["format"] = format
    if format == "csv":
        body = audit_trail.stream_csv(store, start_us=to_us(start) if start else None,
                                      end_us=to_us(end) if end else None)
        return StreamingResponse(body, media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
    heads = await asyncio.to_thread(runtime.audit.heads)
    # The head is made (or found) before the first byte: a refusal is a problem answer, not a cut stream.
    lines = await asyncio.to_thread(lambda: iter(audit_trail.stream_ndjson(store, heads=heads, proofs=proofs)))
    first = await asyncio.to_thread(next, lines)
    request_audit(request).metadata["proofs"] = proofs

    def ndjson() -> Any:
        yield first
        yield from lines

    return StreamingResponse(ndjson(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit.ndjson"'})


# --- signed tree heads and proofs (docs/audit-format.md section 12) -------------------------------------


@router.get("/checkpoint", name="audit.checkpoint", response_class=PlainTextResponse,
            responses={**AUTHED_ERRORS, **problem_responses(404), 200: {
                "description": "The latest signed tree head: a C2SP checkpoint (signed note), as witnesses read it.",
                "content": {"text/plain": {"example": "genesis-audit/3f2a...\n42\nBase64Root=\n\n— genesis-audit/"
                                                      "3f2a... AbCd...\n"}}}})
async def checkpoint(runtime: RuntimeDep, _: Auditor) -> PlainTextResponse:
    """The latest signed tree head as a C2SP checkpoint note."""
    head = await asyncio.to_thread(audit_trail.latest_head, _store(runtime))
    return PlainTextResponse(head.note, media_type="text/plain; charset=utf-8")


@router.get("/heads/latest", name="audit.heads.latest", response_model=HeadRead,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def latest_head(runtime: RuntimeDep, _: Auditor) -> HeadRead:
    """The latest signed tree head, as JSON."""
    heads = await asyncio.to_thread(runtime.audit.heads)
    head = await asyncio.to_thread(audit_trail.latest_head, heads.store)
    return HeadRead(**audit_trail.head_view(head, heads.origin))


@router.get("/heads", name="audit.heads.list", response_model=list[HeadRead], responses=AUTHED_ERRORS)
async def list_heads(
    runtime: RuntimeDep, _: Auditor,
    min_size: Annotated[int, Query(ge=0, le=MAX_SIZE, description="Heads of this size or larger.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[HeadRead]:
    """Signed tree heads by size (page with min_size = last tree_size + 1)."""
    heads = await asyncio.to_thread(runtime.audit.heads)
    found = await asyncio.to_thread(functools.partial(audit_trail.list_heads, heads.store, min_size=min_size,
                                                      limit=limit))
    return [HeadRead(**audit_trail.head_view(h, heads.origin)) for h in found]


@router.post("/heads", name="audit.heads.make", response_model=HeadRead,
             responses={**AUTHED_ERRORS, **problem_responses(409)})
async def make_head(request: Request, runtime: RuntimeDep, _: Auditor, __: RecordIntent) -> HeadRead:
    """Sign a tree head covering every event now (returns the stored one when it already exists)."""
    heads = await asyncio.to_thread(runtime.audit.heads)
    head = await asyncio.to_thread(audit_trail.make_head, heads)
    request_audit(request).metadata.update({"tree_size": head.size, "reason": head.reason})
    return HeadRead(**audit_trail.head_view(head, heads.origin))


@router.get("/proofs/inclusion", name="audit.proofs.inclusion", response_model=InclusionRead,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def inclusion_proof(
    runtime: RuntimeDep, _: Auditor,
    tree_size: Annotated[int, Query(ge=1, le=MAX_SIZE, description="Size of a signed head the client holds.")],
    seq: Annotated[int | None, Query(ge=1, le=MAX_SIZE, description="The event's seq (or give event_id).")] = None,
    event_id: Annotated[str | None, Query(max_length=64, description="The event's id (or give seq).")] = None,
) -> InclusionRead:
    """The proof that an event is in the tree of tree_size events (RFC 9162 inclusion proof)."""
    found = await asyncio.to_thread(functools.partial(audit_trail.inclusion, _store(runtime), tree_size=tree_size,
                                                      seq=seq, event_id=event_id))
    return InclusionRead(**found)


@router.get("/proofs/consistency", name="audit.proofs.consistency", response_model=ConsistencyRead,
            responses=AUTHED_ERRORS)
async def consistency_proof(
    runtime: RuntimeDep, _: Auditor,
    first: Annotated[int, Query(ge=0, le=MAX_SIZE, description="Size of the older signed head.")],
    second: Annotated[int, Query(ge=0, le=MAX_SIZE, description="Size of the newer signed head.")],
) -> ConsistencyRead:
    """The proof that the tree of second events extends that of first (RFC 9162 consistency proof)."""
    found = await asyncio.to_thread(functools.partial(audit_trail.consistency, _store(runtime), first=first,
                                                      second=second))
    return ConsistencyRead(**found)
