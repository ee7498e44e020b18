"""Pydantic models shared by several routers (request/response bodies)."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, WithJsonSchema

from genesis.analytics import Registry
from genesis.analytics.validation import canonical_name
from genesis.errors import TooLarge
from genesis.timeutil import RFC3339_PATTERN

if TYPE_CHECKING:
    from genesis.runtime import Runtime

# Request numbers are strict: JSON true/false or "1.5" are not numbers (pydantic would coerce them).
Price = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
PriceList = Annotated[list[Price], Field(min_length=1, description="Prices, oldest first; finite and > 0.")]

# RFC 3339 date-time text (a missing offset means UTC). Pydantic alone would also take "0.5" or 1700000000 as
# seconds since the epoch and "2026-01-02" as midnight, which the documented `format: date-time` does not allow.
_RFC3339 = re.compile(RFC3339_PATTERN)


def _rfc3339_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time such as 2026-01-02T03:04:05Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339_text)]

# The same rule checked by pydantic-core's regex alone (no Python call per value), for bulk bodies: the route
# turns the text into microseconds with ``genesis.timeutil.rfc3339_to_us`` (which refuses February 30).
TimestampText = Annotated[str, Field(pattern=RFC3339_PATTERN, max_length=40, json_schema_extra={"format": "date-time"},
                                     examples=["2026-01-02T03:04:05Z"])]


def _json_integer(value: object) -> object:
    # JSON Schema counts 10.0 as an integer, but neither true nor "10" (which pydantic's lax mode would take).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    return value


BodyInt = Annotated[int, BeforeValidator(_json_integer)]

# Indicator and strategy parameters are periods, thresholds and band widths: numbers of a sane magnitude.
# Bounding them here keeps absurd values (num_std=1e308) from reaching TA-Lib, which fails on them.
MAX_PARAM_MAGNITUDE = 1e9


def _param_value(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    if not math.isfinite(value) or abs(value) > MAX_PARAM_MAGNITUDE:
        raise ValueError(f"must be finite and at most {MAX_PARAM_MAGNITUDE:g} in magnitude")
    return value


ParamValue = Annotated[
    int | float, BeforeValidator(_param_value),
    WithJsonSchema({"type": "number", "minimum": -MAX_PARAM_MAGNITUDE, "maximum": MAX_PARAM_MAGNITUDE}),
]
Params = Annotated[dict[Annotated[str, Field(max_length=32)], ParamValue], Field(max_length=16)]




def _canonical(value: object) -> object:
    return canonical_name(value) if isinstance(value, str) else value


# A name from one of the analytics registries, in any case and with surrounding blanks as before; the route
# passes it on canonical and the registry's lookup refuses an unknown one (422, ``supported`` listed).
RegistryName = Annotated[str, BeforeValidator(_canonical)]


def names_of(registry: Registry[Any]) -> dict[str, Any]:
    """``json_schema_extra`` that publishes a registry's names as the enum of a :data:`RegistryName` field."""
    return {"enum": list(registry.names)}


# Prices that every indicator and strategy can use with its defaults (MACD's warm-up is 33): request examples
# are sent as shown by Swagger's "Try it out", so they must succeed.
EXAMPLE_PRICES: list[JsonValue] = [round(100.0 + 3.0 * math.sin(i / 3.0) + 0.15 * i, 2) for i in range(40)]


def check_price_count(runtime: Runtime, count: int) -> None:
    """Refuse more prices than the configured maximum with 413."""
    limit = runtime.settings.max_prices_per_request
    if count > limit:
        raise TooLarge(f"at most {limit} prices per request (got {count})")


class Strict(BaseModel):
    """Base for request bodies: unknown fields are refused (no mass assignment)."""

    model_config = ConfigDict(extra="forbid")


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1 access token response."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str
    refresh_token: str | None = None


class SessionRead(BaseModel):
    """A running session: the refresh family started by one login."""

    id: str
    scope: str
    created_at: str = Field(description="When the login happened (RFC 3339).")
    expires_at: str = Field(description="Absolute end of the session; refreshing never moves it.")
    last_used_at: str = Field(description="The login or the latest refresh.")
    source_ip: str | None
    user_agent: str | None
    current: bool = Field(False, description="The session of the token making this request.")


class SessionsEnded(BaseModel):
    ended: int = Field(description="Sessions that were running; every token of the principal is refused now.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries documenting problem answers (their content is filled in by api/openapi.py)."""
    descriptions = {
        400: "Bad request", 401: "Missing, invalid, expired or revoked credentials", 403: "Missing scope",
        404: "Not found", 409: "Conflict", 413: "Request too large", 415: "The body is not JSON",
        422: "Validation error", 429: "Rate limit exceeded", 503: "A backing service is unavailable",
    }
    return {status: {"description": descriptions.get(status, "Error")} for status in statuses}


AUTHED_ERRORS = problem_responses(401, 403, 422, 429, 503)
