"""/docs and /redoc in a real browser, offline: Swagger UI lists the operations, logs in with the password flow
and runs the shown example of POST /strategy/calculate; ReDoc renders."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import Watched, create_user, live_server, login
from tests.live import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("docs") / "data") as live:
        yield live


def _operations(server: LiveServer) -> int:
    spec = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    return sum(len(methods) for methods in spec["paths"].values())


def test_swagger_ui_lists_operations_logs_in_and_runs_the_shown_example(
    server: LiveServer, open_page: Callable[[str], Watched], tmp_path: Path
) -> None:
    password = create_user(server.base_url, login(server.base_url), "docs-trader", "trader")
    watched = open_page(server.base_url)
    page = watched.page
    page.goto("/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() == _operations(server)
    watched.shot("docs")

    page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("#oauth_username").first.fill("docs-trader")
    dialog.locator("#oauth_password").first.fill(password)
    dialog.locator("button.authorize").first.click()
    dialog.locator("button", has_text="Logout").first.wait_for()
    dialog.locator("button.btn-done").first.click()

    path = page.locator(".opblock-summary-path", has_text=re.compile(r"^/strategy/calculate$"))
    operation = page.locator(".opblock-post", has=path)
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    sent = operation.locator("textarea.body-param__text").input_value()
    with page.expect_response(lambda r: r.url.endswith("/strategy/calculate")) as answer:
        operation.locator("button.execute").click()
    assert answer.value.status == 200, answer.value.text()
    assert answer.value.request.headers["authorization"].startswith("Bearer ")
    assert '"strategy_name": "sma"' in sent
    status = operation.locator(".live-responses-table .response .response-col_status").first
    assert status.inner_text().strip() == "200"
    assert "result" in operation.locator(".live-responses-table .microlight").first.inner_text()
    watched.shot("docs-try-it-out")

    # persistAuthorization: opened again, Swagger UI is still authorised (it keeps the token in localStorage).
    # (Not a reload of the deep link: Swagger UI 5 logs a deprecation error for operationIds holding "_".)
    page.goto("about:blank")
    page.goto("/docs")
    page.locator(".opblock").first.wait_for()
    page.locator("button.authorize").first.click()
    page.locator(".modal-ux button", has_text="Logout").first.wait_for()
    watched.assert_clean()


def test_redoc_renders_every_operation(server: LiveServer, open_page: Callable[[str], Watched]) -> None:
    watched = open_page(server.base_url)
    page = watched.page
    page.goto("/redoc")
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    page.get_by_role("heading", name=re.compile("Genesis API")).first.wait_for()
    assert page.locator("[data-section-id^='operation/']").count() == _operations(server)
    watched.shot("redoc")
    watched.assert_clean()
