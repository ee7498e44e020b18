"""The OpenAPI document as a client generator wants it: stable camelCase operationIds, human summaries,
every error answer described by the one Problem schema with an example that matches its status.

FastAPI derives an operationId from the function, path and method (``strategy_calculate_strategy_calculate_post``)
and a summary from the route name (``Strategy.Calculate``); clients generated from that read badly and change
when a path does. Here the operationId is the camelCase route name (``strategyCalculate``), the summary the first
line of the route's docstring, and every 4xx/5xx response is ``application/problem+json`` with the ``Problem``
schema (``ValidationProblem`` for 422) and an example of the problem type that status is answered with.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from genesis.api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES

REF = "#/components/schemas/{model}"
# The problem type an example shows for each status (the most common one when several share a status).
EXAMPLE_TYPE = {422: "validation-error", 400: "invalid-request", 401: "unauthenticated", 429: "rate-limited"}


class FieldError(BaseModel):
    loc: list[str] = Field(description="Where: 'body', 'query' or 'path', then the field names.")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details: every error response."""

    type: str = Field(description="https://genesis.dev/problems/<kind>: one URI per kind of problem.")
    title: str = Field(description="The same for every problem of this type.")
    status: int
    detail: str = Field(description="What went wrong with this request (never echoes the refused input).")
    correlation_id: str | None = Field(None, description="Quote it when reporting; also in X-Request-ID.")
    error: str | None = Field(None, description="The token endpoint's RFC 6749 error code.")
    error_description: str | None = None
    supported: list[str] | None = Field(None, description="The accepted values, when an unknown name was refused.")
    component: str | None = Field(None, description="The unavailable backing service (503).")


class ValidationProblem(Problem):
    """A request that does not match the schema (422): ``errors`` lists each field."""

    errors: list[FieldError] | None = None


def operation_id(route: APIRoute) -> str:
    """``strategy.calculate`` -> ``strategyCalculate``: stable as long as the route's name is."""
    parts = route.name.replace("-", ".").replace("_", ".").split(".")
    return parts[0] + "".join(part[:1].upper() + part[1:] for part in parts[1:])


def _example(status: int, correlation_id: str = "0192f0c4-6d2e-7c1a-9e3b-5f2d8c4a1b7e") -> dict[str, Any]:
    code = EXAMPLE_TYPE.get(status) or next((p.code for p in PROBLEM_TYPES.values() if p.status == status),
                                            "internal-error")
    kind = PROBLEM_TYPES[code]
    example: dict[str, Any] = {"type": kind.uri, "title": kind.title, "status": status,
                               "detail": kind.description.split(";")[0], "correlation_id": correlation_id}
    if status == 422:
        example["errors"] = [{"loc": ["body", "prices", "0"], "msg": "Input should be greater than 0",
                              "type": "greater_than"}]
    if code.startswith("invalid-") and code != "invalid-input":
        example["error"] = code.replace("-", "_")
        example["error_description"] = example["detail"]
    return example


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document FastAPI builds, with every error answer as a problem document."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                       tags=app.openapi_tags)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, ValidationProblem):
        found = model.model_json_schema(ref_template=REF)
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if operation.get("description"):  # the docstring's first line, not "Strategy.Calculate"
                operation["summary"] = operation["description"].strip().splitlines()[0].rstrip(".")
            responses = operation.setdefault("responses", {})
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("415", {"description": "The body is not JSON (send Content-Type: "
                                                            "application/json)"})
            for status, response in responses.items():
                if not status.isdigit() or int(status) < 400:
                    continue
                schema = "ValidationProblem" if status == "422" else "Problem"
                response["content"] = {PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": REF.format(model=schema)}, "example": _example(int(status))}}
    app.openapi_schema = spec
    return spec
