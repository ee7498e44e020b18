"""Schemathesis checks Genesis adds to the built-in ones (loaded in-process and by ``st run`` via SCHEMATHESIS_HOOKS).

Kept free of project imports so that ``st run`` can load it as a plain file.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

DOMAIN_RULE_TYPE = "https://genesis.dev/problems/invalid-input"
TOO_LARGE_TYPE = "https://genesis.dev/problems/too-large"


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"non-standard JSON constant {name}")


def _problem_type(response: Any) -> str | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


@schemathesis.check
def positive_data_acceptance_but_domain_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except for a refusal by a domain rule the schema cannot state.

    "period must not exceed the number of prices", "end must be later than start" or "unknown strategy" depend on
    other fields or on data, so the schema cannot express them; a body's byte cap cannot be stated either. The API
    answers such refusals with a 400/422 problem of type ``invalid-input`` (413 ``too-large`` for the byte cap);
    every other refusal of schema-valid data (``validation-error`` included) still fails.
    """
    if response.status_code in (400, 422) and _problem_type(response) == DOMAIN_RULE_TYPE:
        return None
    if response.status_code == 413 and _problem_type(response) == TOO_LARGE_TYPE:
        return None  # a byte cap (bodies of routes without a token), which a schema of characters cannot state
    return positive_data_acceptance(ctx, response, case)


@schemathesis.check
def strict_json_without_nan(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every JSON body is standard JSON: no NaN, Infinity or -Infinity tokens, one document."""
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if "json" not in content_type or "ndjson" in content_type or not response.content:
        return None
    try:
        json.loads(response.content, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise AssertionError(f"response is not strict JSON: {exc}") from None
    return None
