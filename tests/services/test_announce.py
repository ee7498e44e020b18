"""What producers announce: price messages within their size, anomalies equal to the whole-series oracle however
the series is split into requests, and notices that exist only if their transaction committed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import numpy as np
import orjson
import pytest

from genesis.analytics import scan
from genesis.config import Settings
from genesis.push.notice import Notice
from genesis.runtime import Runtime
from genesis.services.announce import PRICE_CHUNK_BYTES, IngestAnnouncer, price_notices
from genesis.services.auth import Principal
from genesis.storage.protocols import PricePoint
from genesis.timeutil import now_us, rfc3339


def series(n: int = 1500, seed: int = 7) -> list[PricePoint]:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.standard_t(3, n) * 0.01))
    for index in (300, 900, 1300):
        if index < n:
            closes[index] *= 1.4
    return [PricePoint(1_700_000_000_000_000 + i * 60_000_000, float(c)) for i, c in enumerate(closes)]


def test_price_messages_hold_every_point_in_order_within_their_size() -> None:
    points = [PricePoint(1_700_000_000_000_000 + i, 100.0 + i, 99.0, 101.0, 98.0, 5.0) for i in range(2000)]
    notices = price_notices("BTC/USD", points, at_us=now_us())
    assert len(notices) > 1
    bodies = [orjson.loads(n.webhook_body()) for n in notices]
    assert all(len(orjson.dumps(n.data)) <= PRICE_CHUNK_BYTES + 64 for n in notices)
    got = [p["timestamp"] for b in bodies for p in b["data"]["points"]]
    assert got == [rfc3339(p.ts_us) for p in points]
    assert {b["topic"] for b in bodies} == {"prices.BTC/USD"}


@pytest.mark.parametrize("method", ["log_return_zscore", "price_zscore", "mad"])
def test_anomalies_announced_batch_by_batch_equal_the_scan_of_the_whole_series(method: str) -> None:
    points = series()
    announcer = IngestAnnouncer(method=method, window=50, threshold=3.0)
    oracle = scan(np.array([p.close for p in points]), threshold=3.0, window_size=50, method=method)  # type: ignore[arg-type]
    expected = [rfc3339(points[i].ts_us) for i in oracle.anomalies()]
    rng = random.Random(3)
    got: list[str] = []
    start = 0
    while start < len(points):
        stop = min(len(points), start + rng.randint(1, 200))
        tail = [p.close for p in points[max(0, start - announcer.history):start]]
        notices = announcer.announce("X", points[start:stop], 0, tail)
        got += [str(n.data["timestamp"]) for n in notices if n.type == "anomaly"]
        start = stop
    assert got == expected and len(expected) >= 3


def test_back_filled_points_are_announced_as_prices_but_not_scored() -> None:
    points = series(300)
    announcer = IngestAnnouncer(window=20)
    notices = announcer.announce("X", points[:100], 100, [])  # all older than what is stored
    assert notices and {n.type for n in notices} == {"price"}


class Exploding:
    history = 10

    def announce(self, symbol: str, inserted: Sequence[PricePoint], appended_from: int,
                 tail: Sequence[float]) -> list[Notice]:
        raise RuntimeError("a bug in a producer")


def test_a_failing_announcement_rolls_the_ingestion_back_with_its_outbox(settings: Settings) -> None:
    async def scenario() -> None:
        Runtime.migrate(settings)
        runtime = Runtime.build(settings)
        await runtime.start()
        try:
            from genesis.push.urlpolicy import UrlPolicy
            from genesis.services.webhooks import WebhookService

            admin = Principal("user:admin", "user", "admin", "admin", frozenset({"prices:read", "webhooks:manage"}),
                              "j", 2**40)
            service = WebhookService(runtime.webhooks, policy=UrlPolicy.allowing(networks=["127.0.0.1/32"]))
            endpoint = (await service.register(principal=admin, url="http://127.0.0.1:9/h", topics=["prices.RB"],
                                               description="")).endpoint
            with pytest.raises(RuntimeError):
                await runtime.prices.add_many("RB", series(5), announcer=Exploding(), outbox_limit=100)
            assert not await runtime.prices.exists("RB")
            ingested = await runtime.prices.add_many("RB", series(5), announcer=IngestAnnouncer(), outbox_limit=100)
            assert ingested.inserted == 5 and ingested.outbox.rows == 1
            again = await runtime.prices.add_many("RB", series(5), announcer=IngestAnnouncer(), outbox_limit=100)
            assert again.inserted == 0 and again.notices == [] and again.outbox.rows == 0  # duplicates: nothing new
            deliveries = await runtime.webhooks.list_deliveries(endpoint.id, status=None, limit=10, before_id=None)
            assert len(deliveries) == 1
        finally:
            await runtime.close()

    asyncio.run(scenario())
