"""What the API records about one request, filled in by dependencies and routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

STATE_KEY = "genesis_audit"


@dataclass(slots=True)
class RequestAudit:
    """Mutable per-request audit facts; the middleware turns them into one event."""

    source_ip: str
    correlation_id: str
    request_id: str
    actor: str | None = None
    action: str | None = None
    audit: bool = False  # True once the request is authenticated or is an auth attempt
    message: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def request_audit(request: Request) -> RequestAudit:
    """The RequestAudit the middleware attached to ``request``."""
    found = request.scope.get("state", {}).get(STATE_KEY)
    if found is None:  # e.g. an app built without the middleware in a unit test
        found = RequestAudit(source_ip="unknown", correlation_id="", request_id="")
        request.scope.setdefault("state", {})[STATE_KEY] = found
    assert isinstance(found, RequestAudit)
    return found
