"""Prometheus metrics of this process (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from genesis.api.deps import allow
from genesis.api.schemas import AUTHED_ERRORS
from genesis.services.auth import Principal

router = APIRouter(tags=["health"])


@router.get("/metrics", name="metrics", response_class=Response, responses={
    **AUTHED_ERRORS, 200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
async def metrics(_: Annotated[Principal, allow("admin", limit="default")]) -> Response:
    """Requests, latency, rate-limit refusals, audit queue depth and commit latency, chain head, sink errors, push."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
