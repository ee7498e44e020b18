"""Domain errors shared by every layer.

Services raise these; the API layer maps them to RFC 9457 problem details and the
CLI to exit codes. None of them knows about HTTP.
"""

from __future__ import annotations

from typing import Any


class GenesisError(Exception):
    """Base class of every error Genesis raises on purpose."""

    code: str = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(GenesisError):
    """The caller sent something that cannot be processed as asked."""

    code = "invalid_input"


class NotFound(GenesisError):
    """The named resource does not exist (or the caller may not know it does)."""

    code = "not_found"


class Conflict(GenesisError):
    """The request conflicts with the current state (e.g. a duplicate name)."""

    code = "conflict"


class Unauthenticated(GenesisError):
    """Credentials are missing, malformed, expired or revoked."""

    code = "unauthenticated"


class Forbidden(GenesisError):
    """The principal is known but lacks the permission asked for."""

    code = "forbidden"


class TooLarge(GenesisError):
    """The input exceeds a configured size limit."""

    code = "too_large"


class Unavailable(GenesisError):
    """A backing service (database, audit store, Redis) cannot serve now."""

    code = "unavailable"

    def __init__(
        self, message: str, *, component: str, retry_after: int = 1, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.component = component
        self.retry_after = retry_after


class ConfigurationError(GenesisError):
    """Settings are invalid; the message names the variable."""

    code = "configuration"


class RateLimited(GenesisError):
    """Too many requests for a key within a window."""

    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: int, limit: int | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
        self.limit = limit
