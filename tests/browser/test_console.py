"""The console in a real browser, on SQLite and on PostgreSQL: log in, chart GOOG with SMA(20) and its anomalies,
run an SMA crossover backtest, find it in the trail as an auditor, and see only what each role allows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.browser.conftest import ADMIN_PASSWORD, Watched, create_user, live_server, login
from tests.conftest import PG_SKIP, PG_URL
from tests.live import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

UP, DOWN, SMA_COLOR = (0x26, 0xA6, 0x9A), (0xEF, 0x53, 0x50), (0xF5, 0x9E, 0x0B)
# Counts the pixels of the largest canvas in a container that are near each of the given colours.
COUNT_PIXELS = """([selector, colours]) => {
  const canvases = [...document.querySelectorAll(selector + ' canvas')];
  const canvas = canvases.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const counts = colours.map(() => 0);
  let drawn = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0 || (data[i] > 250 && data[i + 1] > 250 && data[i + 2] > 250)) continue;
    drawn++;
    colours.forEach(([r, g, b], k) => {
      if (Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40 && Math.abs(data[i + 2] - b) < 40) counts[k]++;
    });
  }
  return {drawn, counts, total: canvas.width * canvas.height};
}"""


@dataclass
class World:
    server: LiveServer
    admin: dict[str, str]
    passwords: dict[str, str]
    goog_last_day: str


def _goog_bars() -> list[dict[str, Any]]:
    from backtesting.test import GOOG

    return [{"timestamp": ts.strftime("%Y-%m-%dT00:00:00Z"), "open": float(row.Open), "high": float(row.High),
             "low": float(row.Low), "close": float(row.Close), "volume": float(row.Volume)}
            for ts, row in GOOG.iterrows()]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    database_url = None
    if request.param == "postgresql":
        if PG_SKIP:
            pytest.skip(PG_SKIP)
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"genesis_console_{uuid.uuid4().hex[:10]}"
        admin_dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        request.addfinalizer(lambda: _drop(admin_dsn, name))
        database_url = make_url(PG_URL).set(drivername="postgresql", database=name).render_as_string(
            hide_password=False)
    with live_server(tmp_path_factory.mktemp(f"console-{request.param}") / "data", database_url=database_url) as live:
        admin = login(live.base_url)
        bars = _goog_bars()
        ingested = httpx.post(f"{live.base_url}/prices/GOOG", json={"points": bars}, headers=admin, timeout=120)
        assert ingested.status_code == 200 and ingested.json()["inserted"] == 2148, ingested.text
        passwords = {name: create_user(live.base_url, admin, name, role)
                     for name, role in (("tina", "trader"), ("vic", "viewer"), ("audrey", "auditor"))}
        yield World(live, admin, passwords, bars[-1]["timestamp"])


def _drop(dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def log_in(watched: Watched, username: str, password: str) -> None:
    page = watched.page
    page.goto("/console")
    page.wait_for_function("() => document.body.dataset.console === 'ready'")
    page.fill("#login-form input[name=username]", username)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_function("() => document.body.dataset.session === 'active'")


def show_symbol(watched: Watched, symbol: str) -> dict[str, str]:
    page = watched.page
    page.click("#nav a[data-page=market]")
    page.fill("#market-form input[name=symbol]", symbol)
    page.click("#market-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#market-chart').dataset.state === 'ready'")
    dataset: dict[str, str] = page.eval_on_selector("#market-chart", "el => ({...el.dataset})")
    return dataset


def bearer_of(request: Any) -> str | None:
    value = request.headers.get("authorization")
    return value.removeprefix("Bearer ") if value else None


def test_tokens_live_in_memory_only_and_logout_revokes_them(
    world: World, open_page: Callable[[str], Watched]
) -> None:
    watched = open_page(world.server.base_url)
    page = watched.page
    watched.shot("login")
    log_in(watched, "tina", world.passwords["tina"])
    tokens = {bearer_of(r) for r in watched.requests if bearer_of(r)}
    assert len(tokens) == 1
    token = tokens.pop()
    assert token is not None
    assert httpx.get(f"{world.server.base_url}/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    stored = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, ""]
    assert watched.context.cookies() == []
    assert token not in page.content()
    show_symbol(watched, "GOOG")

    with page.expect_request(lambda r: r.url.endswith("/token/revoke")):
        page.click("#logout")
    page.wait_for_function("() => document.body.dataset.session === 'ended'")
    assert page.is_visible("#login-form") and page.is_hidden("#nav")
    # What the session showed is gone from the page, not only hidden.
    assert page.locator("#market-chart canvas").count() == 0
    assert "2,148" not in page.content() and page.input_value("#market-form input[name=symbol]") == ""
    revoked = httpx.get(f"{world.server.base_url}/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401
    watched.assert_clean()


def test_the_access_token_is_refreshed_before_it_expires(world: World, open_page: Callable[[str], Watched]) -> None:
    watched = open_page(world.server.base_url)
    page = watched.page
    page.clock.install()
    log_in(watched, "tina", world.passwords["tina"])
    first = next(bearer_of(r) for r in watched.requests if bearer_of(r))
    with page.expect_response(lambda r: r.url.endswith("/token") and "refresh_token" in (r.request.post_data or "")
                              ) as refreshed:
        page.clock.fast_forward("29:30")  # 30-minute tokens are refreshed a minute before expiry
    assert refreshed.value.status == 200
    with page.expect_request(lambda r: r.url.endswith("/performance")) as later:
        page.click("#nav a[data-page=backtests]")
    second = bearer_of(later.value)
    assert second and second != first
    assert later.value.response() is not None and later.value.response().status == 200  # type: ignore[union-attr]
    watched.assert_clean()


def test_market_draws_goog_with_sma_and_marks_the_spikes(world: World, open_page: Callable[[str], Watched]) -> None:
    watched = open_page(world.server.base_url)
    page = watched.page
    log_in(watched, "tina", world.passwords["tina"])
    chart = show_symbol(watched, "GOOG")
    assert chart["bars"] == "2148" and chart["kind"] == "candles"
    # Lightweight Charts' licence: the footer names TradingView and links to it (set by the page's script).
    assert page.get_attribute("#tradingview-link", "href") == "https://www.tradingview.com/"
    pixels = page.evaluate(COUNT_PIXELS, ["#market-chart", [UP, DOWN, SMA_COLOR]])
    assert pixels["counts"][0] > 2000 and pixels["counts"][1] > 2000, pixels  # up and down candles drawn
    before = int(chart["markers"])
    assert before > 0

    page.select_option("#indicator-name", "sma")
    page.fill("#indicator-params input[name=period]", "20")
    page.click("#indicator-add")
    page.wait_for_function("() => document.querySelector('#market-chart').dataset.series.includes('sma(period=20)')")
    with_sma = page.evaluate(COUNT_PIXELS, ["#market-chart", [UP, DOWN, SMA_COLOR]])
    assert with_sma["counts"][2] > pixels["counts"][2] + 500, (pixels, with_sma)  # the SMA line is drawn
    watched.shot("market")

    # Spikes after the last GOOG day: a jump to twice the price and back.
    last = world.goog_last_day[:10]
    spikes = [("2013-03-04", 806.0), ("2013-03-05", 1612.0), ("2013-03-06", 806.0), ("2013-03-07", 807.0)]
    assert last < spikes[0][0]
    body = {"points": [{"timestamp": f"{day}T00:00:00Z", "open": p, "high": p * 1.01, "low": p * 0.99, "close": p}
                       for day, p in spikes]}
    assert httpx.post(f"{world.server.base_url}/prices/GOOG", json=body, headers=world.admin,
                      timeout=30).status_code == 200
    chart = show_symbol(watched, "GOOG")
    assert chart["bars"] == "2152"
    assert int(chart["markers"]) >= before + 2
    page.click("#anomaly-details summary")
    marked = page.locator("#anomaly-table tbody tr td:first-child").all_inner_texts()
    assert {"2013-03-05", "2013-03-06"} <= set(marked), marked
    assert page.locator("#market-chart").get_attribute("data-series") == "main,sma(period=20)"  # overlay kept
    watched.shot("market-spikes")
    watched.assert_clean()


def test_a_long_tick_series_is_drawn_downsampled(world: World, open_page: Callable[[str], Watched]) -> None:
    ticks = [{"timestamp": f"2026-01-0{1 + i // 86_400}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
              "price": 100.0 + (i % 500) / 10} for i in range(20_000)]
    assert httpx.post(f"{world.server.base_url}/prices/TICKS", json={"points": ticks}, headers=world.admin,
                      timeout=60).status_code == 200
    watched = open_page(world.server.base_url)
    log_in(watched, "tina", world.passwords["tina"])
    chart = show_symbol(watched, "TICKS")
    assert chart["kind"] == "line" and chart["bars"] == "5000"
    page = watched.page
    status = page.inner_text("#market-status")
    assert "downsampled from 20,000 stored points by LTTB" in status
    assert page.evaluate(COUNT_PIXELS, ["#market-chart", []])["drawn"] > 2000

    # Zoomed in, the visible range is fetched again, down to every stored tick.
    box = page.locator("#market-chart").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    detail_requests: list[Any] = []
    page.on("requestfinished", lambda r: detail_requests.append(r) if "start=" in r.url else None)
    for _ in range(80):  # each wheel step zooms ~10%; the console refines 300 ms after the view settles
        if "full detail" in page.inner_text("#market-status"):
            break
        page.mouse.wheel(0, -600)
        page.wait_for_timeout(150)
    page.wait_for_function("() => document.querySelector('#market-status').textContent.includes('full detail')")
    assert detail_requests and all(r.response().status == 200 for r in detail_requests)
    shown = int(page.get_attribute("#market-chart", "data-detail") or "0")
    assert 0 < shown < 5000 and int(page.get_attribute("#market-chart", "data-bars") or "0") > 5000
    for _ in range(80):  # and zoomed out again, the overview comes back
        if "detail" not in page.inner_text("#market-status"):
            break
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(150)
    page.wait_for_function("() => !document.querySelector('#market-status').textContent.includes('detail')")
    assert page.get_attribute("#market-chart", "data-bars") == "5000"
    watched.assert_clean()


def test_backtest_sharpe_equals_the_apis_and_an_auditor_finds_it_in_the_trail(
    world: World, open_page: Callable[[str], Watched]
) -> None:
    trader = open_page(world.server.base_url)
    page = trader.page
    log_in(trader, "tina", world.passwords["tina"])
    page.click("#nav a[data-page=backtests]")
    page.select_option("#backtest-strategy", "sma_crossover")
    page.fill("#backtest-params input[name=fast]", "10")
    page.fill("#backtest-params input[name=slow]", "30")
    page.fill("#backtest-form input[name=symbol]", "GOOG")
    page.fill("#backtest-form input[name=end]", "2013-03-02")
    page.click("#backtest-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#backtest-result').dataset.state === 'ready'")
    backtest_id = page.inner_text("#backtest-id")
    correlation_id = page.inner_text("#backtest-correlation")
    cell = page.locator("#metrics-table tr[data-metric=sharpe] td")
    recorded = httpx.get(f"{world.server.base_url}/backtests/{backtest_id}", headers=world.admin, timeout=30).json()
    assert recorded["strategy"] == "sma_crossover" and recorded["params"] == {"fast": 10, "slow": 30}
    assert float(cell.get_attribute("data-value") or "nan") == recorded["score"] == recorded["metrics"]["sharpe"]
    assert cell.inner_text() == f"{recorded['score']:.4f}"
    assert page.get_attribute("#equity-chart", "data-points") == "2148"
    assert page.evaluate(COUNT_PIXELS, ["#equity-chart", []])["drawn"] > 500
    page.wait_for_selector("#performance-table tr[data-strategy=sma_crossover]")
    trader.shot("backtests")
    trader.assert_clean()

    auditor = open_page(world.server.base_url)
    page = auditor.page
    log_in(auditor, "audrey", world.passwords["audrey"])
    page.wait_for_selector("#page-trail:not([hidden])")  # an auditor's only page
    page.wait_for_function("() => document.querySelector('#verify-status').dataset.state === 'ok'")
    page.fill("#trail-form input[name=correlation_id]", correlation_id)
    page.click("#trail-form button[type=submit]")
    row = page.locator("#trail-table tbody tr[data-action='backtests.run']", has_text="success")
    row.wait_for()
    assert page.locator("#trail-table tbody tr").count() == 2  # the started event and the outcome
    row.click()
    assert page.inner_text("#event-fields dd[data-field=correlation_id]") == correlation_id
    assert page.inner_text("#event-fields dd[data-field=actor]") == "user:tina"
    assert backtest_id in page.inner_text("#event-fields dd[data-field=metadata]")
    auditor.shot("trail")
    page.click("#event-dialog button")
    auditor.assert_clean()


def test_a_viewer_sees_no_admin_page_and_the_api_refuses_it_anyway(
    world: World, open_page: Callable[[str], Watched]
) -> None:
    watched = open_page(world.server.base_url)
    page = watched.page
    log_in(watched, "vic", world.passwords["vic"])
    visible = [a.get_attribute("data-page") for a in page.locator("#nav a:not([hidden])").all()]
    assert visible == ["market", "backtests"]
    assert page.is_hidden("#backtest-form") or not page.is_visible("#nav a[data-page=admin]")
    page.evaluate("() => { window.location.hash = '#/admin'; }")
    page.wait_for_selector("#page-denied:not([hidden])")
    assert page.is_hidden("#page-admin")
    watched.shot("viewer-denied")
    viewer = login(world.server.base_url, "vic", world.passwords["vic"])
    assert httpx.get(f"{world.server.base_url}/users", headers=viewer, timeout=30).status_code == 403
    watched.assert_clean()


def test_an_admin_creates_a_user_and_a_client(world: World, open_page: Callable[[str], Watched]) -> None:
    watched = open_page(world.server.base_url)
    page = watched.page
    log_in(watched, "admin", ADMIN_PASSWORD)
    page.click("#nav a[data-page=admin]")
    page.wait_for_selector("#users-table tbody tr[data-username=tina]")
    page.fill("#user-form input[name=username]", "newbie")
    page.select_option("#user-form select[name=role]", "viewer")
    page.fill("#user-form input[name=password]", "newbie-Pa55word")
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("#users-table tbody tr[data-username=newbie]")
    page.fill("#client-form input[name=client_id]", "console-bot")
    page.select_option("#client-form select[name=role]", "trader")
    page.click("#client-form button[type=submit]")
    page.wait_for_selector("#client-secret:not([hidden])")
    secret = page.inner_text("#client-secret-value")
    granted = httpx.post(f"{world.server.base_url}/token", auth=("console-bot", secret),
                         data={"grant_type": "client_credentials"}, timeout=30)
    assert granted.status_code == 200, granted.text
    login(world.server.base_url, "newbie", "newbie-Pa55word")
    watched.shot("admin")
    watched.assert_clean()

