"""The API's own OpenAPI document at ``/openapi.json``, rate-limited per address.

FastAPI serves it itself when asked, but outside any dependency, so nothing would count it: a client could make the
server encode the whole document as fast as it can send requests. Served here instead, it is a public route of the
``docs`` group (``GENESIS_RATE_LIMIT_DOCS``), like the pages that load it (``/docs``, ``/redoc``: api/web).
"""

from __future__ import annotations

from typing import Final

import orjson
from fastapi import APIRouter, FastAPI, Response

from genesis.api.deps import public

OPENAPI_URL: Final = "/openapi.json"


def openapi_router(app: FastAPI) -> APIRouter:
    """The route serving ``app``'s OpenAPI document (left out of the document itself)."""
    router = APIRouter(include_in_schema=False, dependencies=[public("docs")])

    @router.get(OPENAPI_URL, name="docs.openapi")
    async def openapi() -> Response:
        cached: bytes | None = getattr(app.state, "openapi_bytes", None)
        if cached is None:  # the document never changes once the app is built: encode it once
            cached = app.state.openapi_bytes = orjson.dumps(app.openapi())
        return Response(cached, media_type="application/json")

    return router
