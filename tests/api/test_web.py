"""The pages served to browsers: every asset from this server, no inline script or style, strict security headers,
vendored files that match their manifest, and OpenAPI examples that succeed as Swagger UI sends them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.api.web.assets import STATIC_DIR, manifest
from genesis.api.web.headers import REDOC_CSP, STRICT_CSP
from genesis.config import Settings
from tests.conftest import bearer, token_for

PAGES = ("/docs", "/redoc", "/console", "/docs/oauth2-redirect")
SRC = Path(__file__).resolve().parents[2] / "src" / "genesis"


class _Page(HTMLParser):
    """Collects what a page loads and anything inline."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline_scripts = 0
        self.style_attributes = 0
        self.style_elements = 0
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.style_attributes += "style" in values
        self.handlers += [name for name in values if name.startswith("on")]
        if tag == "script":
            self._in_script = True
            if values.get("src"):
                self.loads.append(values["src"] or "")
        elif tag == "link" and values.get("href"):
            self.loads.append(values["href"] or "")
        elif tag == "img" and values.get("src"):
            self.loads.append(values["src"] or "")
        elif tag == "style":
            self.style_elements += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("web"), admin_username="admin",  # type: ignore[call-arg]
                        admin_password="admin-Pa55word-for-web", log_console=False)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_every_asset_from_this_server_with_no_inline_script_or_style(web: TestClient, path: str) -> None:
    response = web.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    assert page.loads, "a page with nothing to load would prove nothing"
    assert page.inline_scripts == 0 and page.style_attributes == 0 and page.style_elements == 0
    assert page.handlers == []
    for url in page.loads:
        assert url.startswith("/static/"), url
        asset = web.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["x-content-type-options"] == "nosniff"
        if url.endswith((".js", ".mjs")):
            assert asset.headers["content-type"].startswith("text/javascript"), url


@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_a_strict_content_security_policy_and_security_headers(web: TestClient, path: str) -> None:
    response = web.get(path)
    csp = response.headers["content-security-policy"]
    assert csp == (REDOC_CSP if path == "/redoc" else STRICT_CSP)
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


def test_api_responses_are_left_as_they_were(web: TestClient) -> None:
    # The security headers are for browser pages and assets; the JSON API keeps its own headers.
    assert "content-security-policy" not in web.get("/health").headers
    assert "content-security-policy" not in web.get("/openapi.json").headers


def test_vendored_files_match_the_manifest_and_ship_their_licences() -> None:
    entries = manifest()
    assert set(entries) == {"swagger-ui-dist", "redoc", "lightweight-charts"}
    for name, entry in entries.items():
        folder = STATIC_DIR / "vendor" / f"{name}-{entry['version']}"
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"])
        assert entry["license"] in ("Apache-2.0", "MIT")
        assert "LICENSE" in entry["files"]
        assert sorted(p.name for p in folder.iterdir()) == sorted(entry["files"])
        for file, digest in entry["files"].items():
            assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest, f"{name}/{file} was edited"


def test_vendored_assets_are_served_with_a_long_cache_and_ours_revalidated(web: TestClient) -> None:
    entry = manifest()["redoc"]
    vendored = web.get(f"/static/vendor/redoc-{entry['version']}/redoc.standalone.js")
    assert vendored.status_code == 200 and "immutable" in vendored.headers["cache-control"]
    ours = web.get("/static/docs/swagger-init.js")
    assert ours.status_code == 200 and ours.headers["cache-control"] == "no-cache"
    assert web.get("/static/docs/swagger-init.js", headers={"If-None-Match": ours.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path", ["/static/../pyproject.toml", "/static/%2e%2e/app.py", "/static/nope.js",
                                  "/static/vendor", "/static/" + "a" * 5000])
def test_the_static_mount_answers_bad_paths_with_a_problem_not_a_file(web: TestClient, path: str) -> None:
    response = web.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_the_static_mount_refuses_other_methods(web: TestClient) -> None:
    response = web.post("/static/docs/swagger-init.js")
    assert response.status_code == 405


def test_no_packaged_file_loads_anything_from_another_origin() -> None:
    # What a browser would fetch on its own: script/img/iframe src, stylesheet links, CSS url(), module imports.
    loads = re.compile(r"""(?:\bsrc\s*=\s*["']?|<link[^>]*href\s*=\s*["']?|(?-i:url)\(\s*["']?"""
                       r"""|^\s*import\s*(?:\(|[^;'"\n]*\bfrom)?\s*["'])\s*(?:https?:)?//""",
                       re.IGNORECASE | re.MULTILINE)
    cdn = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|cdn\.redoc\.ly|fonts\.googleapis", re.IGNORECASE)
    checked = 0
    for path in SRC.rglob("*"):
        if path.suffix not in (".py", ".html", ".js", ".mjs", ".css"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        checked += 1
        assert not loads.search(text), f"{path} loads from another origin: {loads.search(text)}"
        assert not cdn.search(text), f"{path} names a CDN: {cdn.search(text)}"
    assert checked > 20


def _example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """The request body Swagger UI shows for a schema: each property's first example, else its default."""
    if "$ref" in schema:
        return _example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    body = {}
    for name, prop in schema["properties"].items():
        if "examples" in prop:
            body[name] = prop["examples"][0]
        elif "default" in prop:
            body[name] = prop["default"]
    return body


def test_the_strategy_calculate_example_shown_in_the_docs_succeeds(web: TestClient) -> None:
    spec = web.get("/openapi.json").json()
    operation = spec["paths"]["/strategy/calculate"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    body = _example(schema, spec["components"]["schemas"])
    assert set(body) == {"strategy_name", "prices", "period"}
    token = token_for(web, password="admin-Pa55word-for-web")["access_token"]
    response = web.post("/strategy/calculate", json=body, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"result": pytest.approx(sum(body["prices"][-3:]) / 3)}
