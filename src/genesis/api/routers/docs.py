"""The API's own documentation: ``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, rate-limited per address.

FastAPI serves these itself when asked, but outside any dependency, so nothing would count them: a client could
make the server serialise the whole OpenAPI document as fast as it can send requests. Served here instead, they are
public routes of the ``docs`` group (``GENESIS_RATE_LIMIT_DOCS``), like ``/health`` is of ``health``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from genesis.api.deps import public

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"


def docs_router(app: FastAPI) -> APIRouter:
    """Routes that document ``app`` (left out of its own OpenAPI document)."""
    router = APIRouter(include_in_schema=False, dependencies=[public("docs")])

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @router.get(OPENAPI_URL, name="docs.openapi")
    async def openapi() -> Response:
        return Response(_openapi_bytes(app), media_type="application/json")

    @router.get(DOCS_URL, name="docs.swagger")
    async def swagger(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=root(request) + OPENAPI_URL, title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root(request) + OAUTH2_REDIRECT_URL, init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @router.get(OAUTH2_REDIRECT_URL, name="docs.oauth2_redirect")
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(REDOC_URL, name="docs.redoc")
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=root(request) + OPENAPI_URL, title=f"{app.title} - ReDoc")

    return router


def _openapi_bytes(app: FastAPI) -> bytes:
    cached: bytes | None = getattr(app.state, "openapi_bytes", None)
    if cached is None:  # the document never changes once the app is built: encode it once
        import orjson

        cached = app.state.openapi_bytes = orjson.dumps(app.openapi())
    return cached
