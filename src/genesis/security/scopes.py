"""Roles and the OAuth2 scopes each one grants."""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "prices:read": "Read stored prices.",
    "prices:write": "Ingest prices.",
    "analytics:run": "Compute indicators and strategy values.",
    "backtests:run": "Run and record backtests.",
    "backtests:read": "Read your backtests.",
    "performance:read": "Read strategy performance.",
    "anomalies:read": "Read price anomalies.",
    "audit:read": "Query, export and verify the audit trail.",
    "webhooks:manage": "Register, change and delete webhook endpoints; list and redeliver their deliveries.",
    "admin": "Administer users, clients and every resource.",
}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "trader": frozenset(
        {"prices:read", "prices:write", "analytics:run", "backtests:run", "backtests:read",
         "performance:read", "anomalies:read"}
    ),
    "viewer": frozenset({"prices:read", "performance:read", "anomalies:read", "backtests:read"}),
    "auditor": frozenset({"audit:read"}),
}

ROLES = tuple(ROLE_SCOPES)


def scopes_for(role: str) -> frozenset[str]:
    """The scopes a role grants (empty for an unknown role)."""
    return ROLE_SCOPES.get(role, frozenset())


def grant(role: str, requested: str | None) -> tuple[str, ...] | None:
    """The scopes to put in a token: all of the role's, or the requested subset.

    Returns None when a requested scope is not granted to the role (``invalid_scope``).
    """
    allowed = scopes_for(role)
    if not requested or not requested.strip():
        return tuple(sorted(allowed))
    wanted = set(requested.split())
    if not wanted <= allowed:
        return None
    return tuple(sorted(wanted))
