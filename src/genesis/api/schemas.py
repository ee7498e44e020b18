"""Pydantic models shared by several routers (request/response bodies)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from genesis.errors import TooLarge

if TYPE_CHECKING:
    from genesis.runtime import Runtime

Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PriceList = Annotated[list[Price], Field(min_length=1, description="Prices, oldest first; finite and > 0.")]


def check_price_count(runtime: Runtime, count: int) -> None:
    """Refuse more prices than the configured maximum with 413."""
    limit = runtime.settings.max_prices_per_request
    if count > limit:
        raise TooLarge(f"at most {limit} prices per request (got {count})")


class Strict(BaseModel):
    """Base for request bodies: unknown fields are refused (no mass assignment)."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details (every error response)."""

    type: str = Field(examples=["https://genesis.dev/problems/validation-error"])
    title: str
    status: int
    detail: str
    correlation_id: str | None = None


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1 access token response."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str
    refresh_token: str | None = None


class OAuthErrorBody(Problem):
    """RFC 6749 section 5.2 error response (also a problem document)."""

    error: str
    error_description: str


def problem_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries documenting problem answers."""
    descriptions = {
        400: "Bad request", 401: "Missing, invalid, expired or revoked credentials", 403: "Missing scope",
        404: "Not found", 409: "Conflict", 413: "Request too large", 422: "Validation error",
        429: "Rate limit exceeded", 503: "A backing service is unavailable",
    }
    return {
        status: {"model": Problem, "description": descriptions.get(status, "Error"),
                 "content": {"application/problem+json": {}}}
        for status in statuses
    }


AUTHED_ERRORS = problem_responses(401, 403, 422, 429, 503)
