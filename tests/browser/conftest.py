"""Browser tests: Debian's chromium driven by Playwright against real `genesis serve` processes on 127.0.0.1.

Offline by design: the browser is the system's chromium (never ``playwright install``, which downloads one), and
every page must load from the server under test alone. Each page is watched: any console error, uncaught
exception, Content-Security-Policy violation or request to another origin fails the test.
Without chromium the tests skip with the reason (a newcomer's laptop); in CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.live import LiveServer

CHROMIUM = os.environ.get("GENESIS_CHROMIUM", "/usr/bin/chromium")
# From docs/console.md: headless, no sandbox (CI runs as root), nothing phoning home. Playwright gives each launch a
# fresh temporary profile (user-data-dir) and deletes it on close.
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
ADMIN_PASSWORD = "browser-admin-Pa55word"
ROLE_PASSWORD = "browser-{role}-Pa55word"
LOCAL_SCHEMES = ("data:", "blob:", "about:")


def _chromium_problem() -> str | None:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no chromium at {CHROMIUM} (install Debian's: apt-get install chromium; or set GENESIS_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make install)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium for one test module, closed afterwards whatever happened."""
    problem = _chromium_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where pages are photographed: a temp dir, and GENESIS_SCREENSHOT_DIR as well when set."""
    return tmp_path_factory.mktemp("screenshots")


class Watched:
    """A page in a fresh browser context whose console errors, CSP violations and foreign requests are kept."""

    def __init__(self, browser: Any, base_url: str, screenshots: Path) -> None:
        self.base_url = base_url
        self.origin = urlsplit(base_url).netloc
        self.screenshots = screenshots
        self.problems: list[str] = []
        self.requests: list[Any] = []
        self.context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 900},
                                           service_workers="block")
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        self.page.on("request", self._request)
        self.page.expose_function("__genesisCspViolation", self._csp)
        # Injected by the driver (not subject to the page's CSP): report every violation, not only logged ones.
        self.page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => window.__genesisCspViolation("
            "[e.effectiveDirective, e.blockedURI, e.sourceFile, e.lineNumber].join(' ')));"
        )

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def _csp(self, detail: str) -> None:
        self.problems.append(f"CSP violation: {detail}")

    def _request(self, request: Any) -> None:
        self.requests.append(request)
        if request.url.startswith(LOCAL_SCHEMES):
            return
        if urlsplit(request.url).netloc != self.origin:
            self.problems.append(f"request to another origin: {request.url}")

    def shot(self, name: str) -> Path:
        """Photograph the page into the screenshot dir (and GENESIS_SCREENSHOT_DIR when set)."""
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        extra = os.environ.get("GENESIS_SCREENSHOT_DIR")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any, screenshot_dir: Path) -> Iterator[Callable[[str], Watched]]:
    """Open watched pages on a server; each must end clean (checked here too, after the test's own checks)."""
    opened: list[Watched] = []

    def factory(base_url: str) -> Watched:
        watched = Watched(browser, base_url, screenshot_dir)
        opened.append(watched)
        return watched

    yield factory
    try:
        for watched in opened:
            watched.assert_clean()
    finally:
        for watched in opened:
            watched.close()


def live_server(data_dir: Path, *, database_url: str | None = None, **env: str) -> LiveServer:
    """A `genesis serve` with a known admin password and limits that a test's burst of requests stays under."""
    settings = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_SECRET_KEY": secrets.token_urlsafe(48),
                "GENESIS_RATE_LIMITS_ENABLED": "false", "GENESIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE": "1000",
                **env}
    if database_url:
        settings["GENESIS_DATABASE_URL"] = database_url
    return LiveServer(data_dir=data_dir, env=settings)


def login(base_url: str, username: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
    """Bearer headers for a user (password grant over HTTP)."""
    response = httpx.post(f"{base_url}/token", timeout=30,
                          data={"grant_type": "password", "username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def create_user(base_url: str, admin: dict[str, str], username: str, role: str) -> str:
    """Create a user with ``role`` through the API; returns its password."""
    password = ROLE_PASSWORD.format(role=role)
    response = httpx.post(f"{base_url}/users", headers=admin, timeout=30,
                          json={"username": username, "role": role, "password": password})
    assert response.status_code == 201, response.text
    return password
