"""The HTML pages: Swagger UI at /docs, ReDoc at /redoc, the console at /console; all assets from this server.

No page holds an inline script: each loads its initialiser as a file and reads its settings from ``data-``
attributes that the server fills in here (HTML-escaped), so the strict Content-Security-Policy of
:mod:`genesis.api.web.headers` holds.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import swagger_ui_default_parameters
from fastapi.responses import HTMLResponse

from genesis.api.deps import public
from genesis.api.web.assets import MOUNT_PATH, STATIC_DIR, StaticAssets, vendor_file
from genesis.api.web.headers import SecurityHeadersMiddleware

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
NO_STORE = {"Cache-Control": "no-store"}  # pages are tiny and carry the deployment's root path: always fresh


def _attr(value: object) -> str:
    """A value for a double-quoted HTML attribute: JSON for non-strings, always escaped."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return html.escape(text, quote=True)


def _static(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '')}{MOUNT_PATH}/{path}"


def _page(title: str, head: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n")


def swagger_page(request: Request, app: FastAPI) -> str:
    """Swagger UI for ``app``'s OpenAPI document, initialised by ``docs/swagger-init.js``."""
    root = request.scope.get("root_path", "")
    parameters = {**swagger_ui_default_parameters, **(app.swagger_ui_parameters or {})}
    css, favicon = vendor_file("swagger-ui-dist", "swagger-ui.css"), vendor_file("swagger-ui-dist", "favicon-32x32.png")
    head = (f'<link rel="icon" type="image/png" href="{_attr(_static(request, favicon))}">\n'
            f'<link rel="stylesheet" href="{_attr(_static(request, css))}">\n')
    bundle = vendor_file("swagger-ui-dist", "swagger-ui-bundle.js")
    body = (f'<div id="swagger-ui" data-openapi-url="{_attr(root + (app.openapi_url or ""))}" '
            f'data-oauth2-redirect-url="{_attr(root + "/docs/oauth2-redirect")}" '
            f'data-parameters="{_attr(parameters)}"></div>\n'
            f'<script src="{_attr(_static(request, bundle))}"></script>\n'
            f'<script src="{_attr(_static(request, "docs/swagger-init.js"))}"></script>\n')
    return _page(f"{app.title} - Swagger UI", head, body)


def redoc_page(request: Request, app: FastAPI) -> str:
    """ReDoc for ``app``'s OpenAPI document, initialised by ``docs/redoc-init.js``."""
    root = request.scope.get("root_path", "")
    favicon = vendor_file("swagger-ui-dist", "favicon-32x32.png")
    head = (f'<link rel="icon" type="image/png" href="{_attr(_static(request, favicon))}">\n'
            f'<link rel="stylesheet" href="{_attr(_static(request, "docs/redoc.css"))}">\n')
    body = (f'<div id="redoc" data-openapi-url="{_attr(root + (app.openapi_url or ""))}"></div>\n'
            f'<script src="{_attr(_static(request, vendor_file("redoc", "redoc.standalone.js")))}"></script>\n'
            f'<script src="{_attr(_static(request, "docs/redoc-init.js"))}"></script>\n')
    return _page(f"{app.title} - ReDoc", head, body)


def oauth2_redirect_page(request: Request) -> str:
    """Swagger UI's OAuth2 redirect target (for redirect flows; the password flow does not use it)."""
    script = _static(request, vendor_file("swagger-ui-dist", "oauth2-redirect.js"))
    return _page("Swagger UI: OAuth2 redirect", "", f'<script src="{_attr(script)}"></script>\n')


@cache
def _console_template() -> str:
    return (TEMPLATES_DIR / "console.html").read_text(encoding="utf-8")


def console_page(request: Request) -> str:
    """The console's single page, with the deployment's root path filled in."""
    root = request.scope.get("root_path", "")
    charts = _static(request, vendor_file("lightweight-charts", "lightweight-charts.standalone.production.mjs"))
    return (_console_template().replace("{{static}}", _attr(f"{root}{MOUNT_PATH}"))
            .replace("{{api}}", _attr(root))
            .replace("{{charts}}", _attr(charts))
            .replace("{{charts_dir}}", _attr(charts.rsplit("/", 1)[0])))


def install_web(app: FastAPI) -> None:
    """Serve the docs, the console and their assets from ``app``; add their security headers.

    Call on an app created with ``docs_url=None, redoc_url=None`` (these routes replace FastAPI's CDN-backed ones).
    """

    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(swagger_page(request, app), headers=NO_STORE)

    async def redoc(request: Request) -> HTMLResponse:
        return HTMLResponse(redoc_page(request, app), headers=NO_STORE)

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return HTMLResponse(oauth2_redirect_page(request), headers=NO_STORE)

    async def console(request: Request) -> HTMLResponse:
        return HTMLResponse(console_page(request), headers=NO_STORE)

    # Rate-limited per address like /openapi.json (GENESIS_RATE_LIMIT_DOCS): a page costs little, but nothing
    # answered should be free to flood.
    route: dict[str, Any] = {"include_in_schema": False, "methods": ["GET"], "dependencies": [public("docs")]}
    app.add_api_route("/docs", docs, name="docs.swagger", **route)
    app.add_api_route("/docs/oauth2-redirect", oauth2_redirect, name="docs.oauth2_redirect", **route)
    app.add_api_route("/redoc", redoc, name="docs.redoc", **route)
    app.add_api_route("/console", console, name="console", **route)
    app.mount(MOUNT_PATH, StaticAssets(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeadersMiddleware)
