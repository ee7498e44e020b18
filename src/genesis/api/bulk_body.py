"""Large JSON bodies read without holding the event loop: ``{"<field>": [item, item, ...]}``, parsed as it arrives.

FastAPI reads a declared body whole, decodes it with one ``json.loads`` and validates it with one pydantic call:
for a 16 MiB price body that is about half a second during which the worker answers nobody (``/health``
included). Here the bytes are fed to an incremental parser (ijson's C backend) at most 64 KiB at a time as they
arrive, and the items are validated in batches of 1,000; the loop gets control back between every step, so no step
holds it for more than a few milliseconds.

What is accepted and refused is the same as FastAPI's own handling of a body declared as the model: the same
content types, the same pydantic item validation with the same locations (``["body", "points", 3, "price"]``) in a
422 ``RequestValidationError``. Three differences, on purpose: too many items is a 413 before any is validated; an
unknown top-level member stops the reading at once (its error alone is reported); at most MAX_ERRORS errors are
listed. A JSON syntax error is located at ``["body"]`` (the incremental parser does not report the offset). The
route declares the model for the OpenAPI document with :func:`openapi_body`.
"""

from __future__ import annotations

import asyncio
import email.message
from collections.abc import AsyncIterator
from typing import Any, Final, TypeVar

import ijson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request

from genesis.errors import TooLarge

M = TypeVar("M", bound=BaseModel)

SLICE_BYTES: Final = 64 * 1024
"""Most bytes parsed in one step (~5-10 ms of the parser's time at worst)."""
BATCH_ITEMS: Final = 1_000
"""Items validated in one pydantic call (~3 ms)."""
MAX_ERRORS: Final = 100
"""A body with 100,000 bad items gets the first 100 errors, not a 100,000-entry answer."""


def _json_content_type(value: str | None) -> bool:
    """FastAPI's rule (``strict_content_type``): ``application/json`` or ``application/*+json``, nothing else."""
    if not value:
        return False
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _body_error(error_type: str, msg: str, *loc: str | int) -> RequestValidationError:
    return RequestValidationError([{"type": error_type, "loc": ("body", *loc), "msg": msg, "input": None}])


class _Pairs:
    """The ``send`` target of ijson's ``kvitems`` coroutine: the top-level members as they complete."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []

    def send(self, pair: tuple[str, Any]) -> None:
        self.items.append(pair)


async def _slices(request: Request) -> AsyncIterator[bytes]:
    """The body in pieces of at most SLICE_BYTES, giving the loop a turn between pieces."""
    async for chunk in request.stream():
        for start in range(0, len(chunk), SLICE_BYTES):
            yield chunk[start : start + SLICE_BYTES]
            await asyncio.sleep(0)


async def read_list_body(request: Request, model: type[M], field: str, *, max_items: int) -> list[Any]:
    """The validated items of ``field`` in a JSON body that ``model`` describes as ``{field: [items]}``.

    Raises:
        RequestValidationError: what FastAPI would answer for the same body (422).
        TooLarge: more than ``max_items`` items (413), found before any of them is validated.
    """
    if not _json_content_type(request.headers.get("content-type")):
        raise _body_error("model_attributes_type", "Input should be a valid dictionary or object to extract fields "
                                                   "from")
    pairs = _Pairs()
    parser = ijson.kvitems_coro(pairs, "", use_float=True)
    first: bytes | None = None
    received = False
    try:
        async for piece in _slices(request):
            received = received or bool(piece)
            if first is None and piece.strip():
                first = piece.lstrip()[:1]
                if first != b"{":  # not an object: no member will ever come; refuse without reading on
                    raise _body_error("model_attributes_type",
                                      "Input should be a valid dictionary or object to extract fields from")
            parser.send(piece)
            extra = [key for key, _ in pairs.items if key != field]
            if extra:  # stop at the first unknown member (mass assignment): nothing after it matters
                raise _body_error("extra_forbidden", "Extra inputs are not permitted", extra[0][:64])
        if not received:
            raise _body_error("missing", "Field required")
        parser.close()
    except ijson.JSONError:
        raise _body_error("json_invalid", "JSON decode error") from None
    if first is None:  # blanks only: not JSON (an empty body was refused above as missing)
        raise _body_error("json_invalid", "JSON decode error")
    values = [value for key, value in pairs.items if key == field]
    if not values:
        raise _body_error("missing", "Field required", field)
    items = values[-1]  # a repeated member: the last one counts, as with json.loads
    if not isinstance(items, list) or not items:
        _validate_whole(model, {field: items})  # the model's own error for a non-list or an empty list
    if len(items) > max_items:
        raise TooLarge(f"at most {max_items} items per request (got {len(items)})")
    return await _validate_items(model, field, items)


def _validate_whole(model: type[BaseModel], value: dict[str, Any]) -> None:
    try:
        model.model_validate(value)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


async def _validate_items(model: type[BaseModel], field: str, items: list[Any]) -> list[Any]:
    adapter = _adapters.get((model, field))
    if adapter is None:
        annotation = model.model_fields[field].annotation
        assert annotation is not None
        adapter = _adapters[(model, field)] = TypeAdapter(annotation)
    valid: list[Any] = []
    errors: list[dict[str, Any]] = []
    for start in range(0, len(items), BATCH_ITEMS):
        try:
            # from_attributes as FastAPI validates bodies: the same error types (model_attributes_type...)
            valid.extend(adapter.validate_python(items[start : start + BATCH_ITEMS], from_attributes=True))
        except ValidationError as exc:
            for error in exc.errors():
                index, *rest = error["loc"]
                errors.append({**error, "loc": ("body", field, start + int(index), *rest)})
        if len(errors) >= MAX_ERRORS:
            break
        await asyncio.sleep(0)
    if errors:
        raise RequestValidationError(errors[:MAX_ERRORS])
    return valid


_adapters: dict[tuple[type[BaseModel], str], TypeAdapter[Any]] = {}


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as a route's required JSON body, as FastAPI would for a body parameter."""
    return {"requestBody": {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/"
                                                                                f"{model.__name__}"}}},
                            "required": True}}


def publish_schemas(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add ``models`` (and the models they use) to the app's OpenAPI components, as FastAPI renders them."""
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            routes = []
            for model in models:
                async def endpoint(body: Any) -> None:
                    return None

                endpoint.__annotations__ = {"body": model, "return": None}  # a body of the model, for its schema
                routes.append(APIRoute(f"/{model.__name__}", endpoint, methods=["POST"]))
            extra = get_openapi(title="", version="", routes=routes)["components"]["schemas"]
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, value in extra.items():
                if name not in ("HTTPValidationError", "ValidationError"):
                    components.setdefault(name, value)
            schema["components"]["schemas"] = dict(sorted(components.items()))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
