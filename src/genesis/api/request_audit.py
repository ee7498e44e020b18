"""What the trail says about one request: the facts routes add, and the events they become.

The request-audit path is this module and ``genesis.api.middleware``: the middleware creates a
:class:`RequestAudit` per request and, when the response starts, records its outcome event through
the injected ``AuditRecorder``; dependencies and routes only fill in facts (the actor once
authenticated, the action of an auth attempt, metadata such as a backtest id). A state-changing
route also depends on ``RecordIntent`` (``genesis.api.deps``), which records
:meth:`RequestAudit.intent_event` before the route does anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.types import Scope

from genesis.audit import AuditEvent, new_event

STATE_KEY: Final = "genesis_audit"
REFUSALS: Final = frozenset({401, 403, 429})


def outcome_of(status: int) -> str:
    """``success`` below 400, ``denied`` for 401/403/429, ``error`` for 5xx, else ``failure``."""
    if status < 400:
        return "success"
    if status in REFUSALS:
        return "denied"
    return "error" if status >= 500 else "failure"


@dataclass(slots=True)
class RequestAudit:
    """Mutable facts about one request; the middleware turns them into its one outcome event."""

    source_ip: str
    correlation_id: str
    request_id: str
    method: str = ""
    path: str = ""
    user_agent: str | None = None
    actor: str | None = None
    action: str | None = None
    audit: bool = False  # True once the request is authenticated or is an auth attempt
    message: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def _event(self, action: str, *, outcome: str, status: int | None, message: str) -> AuditEvent:
        return new_event(
            action, actor=self.actor or "anonymous", outcome=outcome, source_ip=self.source_ip,
            user_agent=self.user_agent, method=self.method, path=self.path, status=status,
            correlation_id=self.correlation_id, request_id=self.request_id, message=message, metadata=self.metadata,
        )

    def intent_event(self, route_name: str | None) -> AuditEvent:
        """The ``started`` event a state-changing route commits before it changes anything."""
        action = route_name or f"http.{self.method.lower()}"
        return self._event(action, outcome="started", status=None, message=f"{self.method} {self.path[:200]} started")

    def outcome_event(self, route_name: str | None, status: int) -> AuditEvent:
        """The event that records how the request ended."""
        action = self.action or route_name or f"http.{self.method.lower()}"
        if status == 401 and not self.action:
            action = "auth.refused"
        message = self.message or f"{self.method} {self.path[:200]} -> {status}"
        return self._event(action, outcome=outcome_of(status), status=status, message=message)


def route_name(scope: Scope) -> str | None:
    """The name of the route that matched (None before routing or when nothing matched)."""
    return getattr(scope.get("route"), "name", None)


def request_audit(request: Request) -> RequestAudit:
    """The RequestAudit the middleware attached to ``request``."""
    found = request.scope.get("state", {}).get(STATE_KEY)
    if found is None:  # e.g. an app built without the middleware in a unit test
        found = RequestAudit(source_ip="unknown", correlation_id="", request_id="")
        request.scope.setdefault("state", {})[STATE_KEY] = found
    assert isinstance(found, RequestAudit)
    return found
