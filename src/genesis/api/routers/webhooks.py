"""Webhook endpoints and their deliveries (scope ``webhooks:manage``; see genesis.services.webhooks for why)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from genesis.api.deps import RecordIntent, RuntimeDep, allow
from genesis.api.request_audit import request_audit
from genesis.api.schemas import AUTHED_ERRORS, Strict, problem_responses
from genesis.errors import NotFound
from genesis.runtime import Runtime, webhook_policy
from genesis.services.auth import Principal
from genesis.services.webhooks import MAX_TOPICS, WebhookService
from genesis.storage.webhooks import AttemptRecord, DeliveryRecord, EndpointRecord
from genesis.timeutil import rfc3339

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
Manager = Annotated[Principal, allow("webhooks:manage", limit="default")]
EndpointId = Annotated[str, Path(max_length=40, pattern=r"^ep_[A-Za-z0-9_-]{1,32}$")]
MsgId = Annotated[str, Path(max_length=40, pattern=r"^msg_[A-Za-z0-9_-]{1,32}$")]
TopicList = Annotated[list[Annotated[str, Field(max_length=64)]], Field(
    min_length=1, max_length=MAX_TOPICS, examples=[["anomalies.GOOG", "backtests"]],
    description="Topics (docs/push.md), or `prices.*` / `anomalies.*` for every symbol.")]


class WebhookCreate(Strict):
    url: str = Field(max_length=2048, examples=["https://hooks.example.com/genesis"],
                     description="https only (http and private addresses only when allow-listed).")
    topics: TopicList
    description: str = Field("", max_length=255)


class WebhookUpdate(Strict):
    url: str | None = Field(None, max_length=2048)
    topics: TopicList | None = None
    description: str | None = Field(None, max_length=255)
    enabled: bool | None = Field(None, description="true resumes a disabled endpoint and its pending deliveries.")


class WebhookRead(BaseModel):
    id: str
    url: str
    topics: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    owner: str
    created_at: str
    updated_at: str
    rotating: bool = Field(description="Deliveries are signed with the previous secret too (until it expires).")


class WebhookSecret(WebhookRead):
    secret: str = Field(description="The signing secret (`whsec_...`), shown in this response only.")


class AttemptRead(BaseModel):
    at: str
    verdict: str
    status: int | None
    duration_ms: float
    error: str | None
    detail: str
    excerpt: str


class DeliveryRead(BaseModel):
    id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    topic: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: str
    next_attempt_at: str | None
    delivered_at: str | None
    last_status: int | None
    last_error: str | None
    attempt_log: list[AttemptRead]


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryRead]
    next_before: int | None = Field(description="Pass as `before` for older deliveries; null at the end.")


def _service(runtime: Runtime) -> WebhookService:
    return WebhookService(runtime.webhooks, policy=webhook_policy(runtime.settings),
                          max_endpoints=runtime.settings.webhook_max_endpoints)


def _read(e: EndpointRecord) -> WebhookRead:
    return WebhookRead(id=e.id, url=e.url, topics=list(e.topics), description=e.description, enabled=e.enabled,
                       disabled_reason=e.disabled_reason, owner=e.owner, created_at=rfc3339(e.created_at_us),
                       updated_at=rfc3339(e.updated_at_us), rotating=len(e.secrets(e.updated_at_us)) > 1)


def _delivery(d: DeliveryRecord, attempts: list[AttemptRecord]) -> DeliveryRead:
    return DeliveryRead(
        id=d.msg_id, topic=d.topic, type=d.type, status=d.status, attempts=d.attempts,  # type: ignore[arg-type]
        created_at=rfc3339(d.created_at_us),
        next_attempt_at=rfc3339(d.next_attempt_at_us) if d.status == "pending" else None,
        delivered_at=rfc3339(d.delivered_at_us) if d.delivered_at_us else None, last_status=d.last_status,
        last_error=d.last_error,
        attempt_log=[AttemptRead(at=rfc3339(a.attempted_at_us), verdict=a.verdict, status=a.status,
                                 duration_ms=a.duration_ms, error=a.error, detail=a.detail, excerpt=a.excerpt)
                     for a in attempts])


def _describe(request: Request, endpoint_id: str, url: str | None = None, topics: list[str] | None = None) -> None:
    """What the trail records about a change: never the secret, nor the URL's query (it may hold a credential)."""
    facts = request_audit(request).metadata
    facts["endpoint_id"] = endpoint_id
    if url is not None:
        parts = urlsplit(url)
        facts["url"] = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    if topics is not None:
        facts["topics"] = topics


@router.post("", name="webhooks.create", status_code=201, response_model=WebhookSecret,
             responses={**AUTHED_ERRORS, **problem_responses(409, 413)})
async def create(body: WebhookCreate, request: Request, runtime: RuntimeDep, principal: Manager,
                 _: RecordIntent) -> WebhookSecret:
    """Register an endpoint; its signing secret is in this response only."""
    made = await _service(runtime).register(principal=principal, url=body.url, topics=body.topics,
                                            description=body.description)
    _describe(request, made.endpoint.id, made.endpoint.url, list(made.endpoint.topics))
    return WebhookSecret(**_read(made.endpoint).model_dump(), secret=made.secret)


@router.get("", name="webhooks.list", response_model=list[WebhookRead], responses=AUTHED_ERRORS)
async def list_endpoints(runtime: RuntimeDep, _: Manager) -> list[WebhookRead]:
    """Every endpoint (never a secret)."""
    return [_read(e) for e in await runtime.webhooks.list_endpoints()]


@router.get("/{endpoint_id}", name="webhooks.read", response_model=WebhookRead,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def read(endpoint_id: EndpointId, runtime: RuntimeDep, _: Manager) -> WebhookRead:
    """One endpoint."""
    return _read(await _service(runtime).get(endpoint_id))


@router.patch("/{endpoint_id}", name="webhooks.update", response_model=WebhookRead,
              responses={**AUTHED_ERRORS, **problem_responses(404, 413)})
async def update(endpoint_id: EndpointId, body: WebhookUpdate, request: Request, runtime: RuntimeDep,
                 principal: Manager, _: RecordIntent) -> WebhookRead:
    """Change the URL, topics or description, or disable / enable the endpoint."""
    _describe(request, endpoint_id, body.url, body.topics)
    if body.enabled is not None:
        request_audit(request).metadata["enabled"] = body.enabled
    updated = await _service(runtime).update(endpoint_id, principal=principal, url=body.url, topics=body.topics,
                                             description=body.description, enabled=body.enabled)
    if updated.enabled:
        runtime.publisher.outboxed_wake()
    return _read(updated)


@router.delete("/{endpoint_id}", name="webhooks.delete", status_code=204,
               responses={**AUTHED_ERRORS, **problem_responses(404)})
async def delete(endpoint_id: EndpointId, request: Request, runtime: RuntimeDep, _: Manager,
                 __: RecordIntent) -> Response:
    """Delete an endpoint with its deliveries."""
    _describe(request, endpoint_id)
    await _service(runtime).delete(endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", name="webhooks.rotate_secret", response_model=WebhookSecret,
             responses={**AUTHED_ERRORS, **problem_responses(404)})
async def rotate_secret(endpoint_id: EndpointId, request: Request, runtime: RuntimeDep, _: Manager,
                        __: RecordIntent) -> WebhookSecret:
    """A new secret (shown once); deliveries carry signatures with the old and the new one for 24 hours."""
    _describe(request, endpoint_id)
    made = await _service(runtime).rotate_secret(endpoint_id)
    return WebhookSecret(**_read(made.endpoint).model_dump(), secret=made.secret)


@router.get("/{endpoint_id}/deliveries", name="webhooks.deliveries", response_model=DeliveryPage,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def deliveries(
    endpoint_id: EndpointId, runtime: RuntimeDep, _: Manager,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, description="From `next_before` of the previous page.")] = None,
) -> DeliveryPage:
    """Deliveries, newest first, each with its attempts (status, duration, error)."""
    await _service(runtime).get(endpoint_id)
    found = await runtime.webhooks.list_deliveries(endpoint_id, status=status, limit=limit, before_id=before)
    attempts = await runtime.webhooks.attempts_of([d.id for d in found])
    return DeliveryPage(deliveries=[_delivery(d, attempts[d.id]) for d in found],
                        next_before=found[-1].id if len(found) == limit else None)


@router.get("/{endpoint_id}/deliveries/{msg_id}", name="webhooks.delivery", response_model=DeliveryRead,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def delivery(endpoint_id: EndpointId, msg_id: MsgId, runtime: RuntimeDep, _: Manager) -> DeliveryRead:
    """One delivery and its attempts."""
    found = await runtime.webhooks.get_delivery(endpoint_id, msg_id)
    if found is None:
        raise NotFound(f"no delivery {msg_id!r} of endpoint {endpoint_id!r}")
    return _delivery(*found)


@router.post("/{endpoint_id}/deliveries/{msg_id}/redeliver", name="webhooks.redeliver", status_code=202,
             responses={**AUTHED_ERRORS, **problem_responses(404)})
async def redeliver(endpoint_id: EndpointId, msg_id: MsgId, request: Request, runtime: RuntimeDep, _: Manager,
                    __: RecordIntent) -> Response:
    """Send a delivery again (same `webhook-id`, a fresh retry schedule)."""
    _describe(request, endpoint_id)
    request_audit(request).metadata["delivery_id"] = msg_id
    await _service(runtime).redeliver(endpoint_id, msg_id)
    runtime.publisher.outboxed_wake()
    return Response(status_code=202)
