"""Domain errors shared by every layer.

Each error carries its meaning as data, the way click's exceptions carry their ``exit_code``:
``code`` (the problem-type slug, kebab-case), ``title``, ``http_status`` and ``exit_code``. Services
raise them without knowing who will read them; the API's single translation point
(``genesis.api.problems``) and the CLI read these attributes and add nothing of their own.
"""

from __future__ import annotations

from typing import Any


class GenesisError(Exception):
    """Base class of every error Genesis raises on purpose."""

    code: str = "error"
    """Problem-type slug: ``https://genesis.dev/problems/<code>``; stable, kebab-case."""
    title: str = "Error"
    http_status: int = 400
    exit_code: int = 1

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, audit: dict[str, Any] | None = None
    ) -> None:
        """Args:
            message: for the caller; never holds an input value (it may be shown or logged anywhere).
            audit: facts for the audit trail only, never sent to the caller (e.g. why a read was refused).
        """
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.audit = audit or {}


class InvalidInput(GenesisError):
    """The caller sent something that cannot be processed as asked."""

    code = "invalid-input"
    title = "Invalid input"
    http_status = 422
    exit_code = 2


class NotFound(GenesisError):
    """The named resource does not exist (or the caller may not know it does)."""

    code = "not-found"
    title = "Not found"
    http_status = 404
    exit_code = 3


class Conflict(GenesisError):
    """The request conflicts with the current state (e.g. a duplicate name)."""

    code = "conflict"
    title = "Conflict"
    http_status = 409
    exit_code = 4


class Unavailable(GenesisError):
    """A backing service (database, audit store, Redis) cannot serve now."""

    code = "unavailable"
    title = "Service unavailable"
    http_status = 503
    exit_code = 5

    def __init__(
        self, message: str, *, component: str, retry_after: int = 1, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.component = component
        self.retry_after = retry_after


class ConfigurationError(GenesisError):
    """Settings are invalid; the message names the variable."""

    code = "configuration"
    title = "Configuration error"
    http_status = 500
    exit_code = 6


class Unauthenticated(GenesisError):
    """Credentials are missing, malformed, expired or revoked."""

    code = "unauthenticated"
    title = "Unauthorized"
    http_status = 401
    exit_code = 7


class Forbidden(GenesisError):
    """The principal is known but lacks the permission asked for."""

    code = "forbidden"
    title = "Forbidden"
    http_status = 403
    exit_code = 8


class TooLarge(GenesisError):
    """The input exceeds a configured size limit."""

    code = "too-large"
    title = "Content too large"
    http_status = 413
    exit_code = 2


class RateLimited(GenesisError):
    """Too many requests for a key within a window."""

    code = "rate-limited"
    title = "Too many requests"
    http_status = 429
    exit_code = 9

    def __init__(
        self, message: str, *, retry_after: int, limit: int | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
        self.limit = limit
