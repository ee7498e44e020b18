"""The Redis broker against a real Redis: two hubs in one process stand for two workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis

from genesis.errors import Unavailable
from genesis.push import Hub, Message, PushLimits
from genesis.storage.push_redis import RedisBroker
from tests.live import RedisServer, TcpProxy
from tests.push.conftest import body, describe, nothing_more, take, viewer

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of its own for one test; its keys are deleted afterwards."""
    name = f"genesis-test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


@asynccontextmanager
async def worker(url: str, prefix: str, limits: PushLimits | None = None, **options: Any) -> AsyncIterator[Hub]:
    options.setdefault("block_ms", 500)
    async with Hub(limits, broker=RedisBroker(url, key_prefix=prefix, **options)) as hub:
        yield hub


def test_two_workers_see_the_same_messages_in_the_same_order_with_the_same_numbers(
    redis_url: str, prefix: str,
) -> None:
    async def scenario() -> None:
        async with worker(redis_url, prefix) as a, worker(redis_url, prefix) as b:
            on_a, on_b = a.connect(viewer("viewer", "x")), b.connect(viewer("viewer", "y"))
            await on_a.subscribe("anomalies.GOOG")
            await on_b.subscribe("anomalies.GOOG")
            published = []
            for i in range(20):
                hub = a if i % 3 else b  # both workers publish, interleaved
                published.append(await hub.publish("anomalies.GOOG", "anomaly", {"i": i}))
            assert [m.seq for m in published] == list(range(1, 21))
            got_a, got_b = await take(on_a, 20), await take(on_b, 20)
            assert [i.payload for i in got_a] == [i.payload for i in got_b] == [m.payload for m in published]
            assert [body(i)["data"]["i"] for i in got_b] == list(range(20))
            assert await nothing_more(on_a) and await nothing_more(on_b)
    run(scenario)


def test_a_subscriber_on_one_worker_receives_what_another_published_and_nothing_private(
    redis_url: str, prefix: str,
) -> None:
    async def scenario() -> None:
        async with worker(redis_url, prefix) as a, worker(redis_url, prefix) as b:
            alice, admin = b.connect(viewer("trader", "alice")), b.connect(viewer("admin", "root"))
            await alice.subscribe("backtests")
            await admin.subscribe("backtests")
            for owner in ("user:bob", "user:alice", "user:bob", "user:alice"):
                await a.publish("backtests", "backtest.completed", {"owner": owner}, owner=owner)
            mine = await take(alice, 2)
            assert [body(i)["data"]["owner"] for i in mine] == ["user:alice"] * 2
            assert describe(mine) == [("m", 1), ("m", 2)]
            assert describe(await take(admin, 4)) == [("m", n) for n in range(1, 5)]
            assert await nothing_more(alice)
    run(scenario)


def test_a_fresh_worker_resumes_a_token_from_redis_after_the_first_worker_is_gone(
    redis_url: str, prefix: str,
) -> None:
    async def scenario() -> None:
        async with worker(redis_url, prefix) as a:
            conn = a.connect(viewer())
            await conn.subscribe("audit")
            for n in range(10):
                await a.publish("audit", "audit.event", {"n": n})
            seen = await take(conn, 4)  # the client had read 4 when its worker died
            token = seen[-1].token
        async with worker(redis_url, prefix) as b:
            for n in range(10, 12):
                await b.publish("audit", "audit.event", {"n": n})
            conn = b.connect(viewer())
            await conn.subscribe("audit", since=token)
            items = await take(conn, 8)
            assert describe(items) == [("m", s) for s in range(5, 13)]
            assert [body(i)["data"]["n"] for i in items] == list(range(4, 12))
            await b.publish("audit", "audit.event", {"n": 12})
            assert describe(await take(conn, 1)) == [("m", 13)]
    run(scenario)


def test_a_lagging_subscriber_gets_a_gap_notice_across_workers(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with worker(redis_url, prefix) as a, worker(redis_url, prefix, PushLimits(queue_messages=5)) as b:
            slow = b.connect(viewer("viewer", "slow"))
            await slow.subscribe("prices.GOOG")
            for i in range(40):
                await a.publish("prices.GOOG", "price", {"i": i})
            async with asyncio.timeout(10):  # until b has been fed all 40
                while b.stats()["retained_messages"] < 40:
                    await asyncio.sleep(0.01)
            assert describe(await take(slow, 2)) == [("gap", ("lagged", 1, 39)), ("m", 40)]
    run(scenario)


def test_a_redis_outage_loses_nothing_the_stream_holds_and_publishing_fails_loudly(
    redis_url: str, prefix: str,
) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    proxy = TcpProxy(host, int(port))
    through_proxy = f"redis://127.0.0.1:{proxy.port}/{redis_url.rsplit('/', 1)[-1]}"

    async def scenario() -> None:
        async with worker(redis_url, prefix) as a, worker(through_proxy, prefix, backoff=(0.05, 0.2)) as b:
            conn = b.connect(viewer())
            await conn.subscribe("prices.GOOG")
            await a.publish("prices.GOOG", "price", {"i": 0})
            assert describe(await take(conn, 1)) == [("m", 1)]
            proxy.cut()
            for i in range(1, 6):
                await a.publish("prices.GOOG", "price", {"i": i})
            with pytest.raises(Unavailable):
                await b.publish("prices.GOOG", "price", {"i": -1})
            proxy.restore()
            items = await take(conn, 5, deadline=30)
            assert describe(items) == [("m", n) for n in range(2, 7)]
            assert [body(i)["data"]["i"] for i in items] == [1, 2, 3, 4, 5]
    try:
        run(scenario)
    finally:
        proxy.close()


@pytest.mark.skipif(not RedisServer.available(), reason="redis-server is not installed")
def test_when_redis_loses_its_data_subscribers_get_an_epoch_gap_not_reused_numbers() -> None:
    server = RedisServer().start()

    async def scenario() -> None:
        async with worker(server.url, "g", check_seconds=0.2, backoff=(0.05, 0.2)) as a, \
                worker(server.url, "g", check_seconds=0.2, backoff=(0.05, 0.2)) as b:
            conn = b.connect(viewer())
            await conn.subscribe("audit")
            for n in range(3):
                await a.publish("audit", "audit.event", {"n": n})
            before = await take(conn, 3)
            server.stop()
            server.start()  # no persistence: every key is gone
            for n in range(3, 5):
                await publish_when_up(a, {"n": n})
            items = await take(conn, 3, deadline=30)
            assert describe(items) == [("gap", ("epoch", 1, 0)), ("m", 1), ("m", 2)]
            assert items[1].token.split(":")[0] != before[0].token.split(":")[0]
            assert [body(i)["data"]["n"] for i in items[1:]] == [3, 4]
            # A client coming back with a token of the lost epoch is told so, then gets the new history.
            late = a.connect(viewer())
            await late.subscribe("audit", since=before[-1].token)
            assert describe(await take(late, 3)) == [("gap", ("epoch", 1, 0)), ("m", 1), ("m", 2)]
    try:
        run(scenario)
    finally:
        server.stop()


async def publish_when_up(hub: Hub, data: dict[str, int]) -> Message:
    async with asyncio.timeout(30):
        while True:
            try:
                return await hub.publish("audit", "audit.event", data)
            except Unavailable:
                await asyncio.sleep(0.05)


def test_a_lost_counter_continues_from_the_stream_and_a_rolled_back_one_starts_a_new_epoch(
    redis_url: str, prefix: str,
) -> None:
    async def scenario() -> None:
        async with worker(redis_url, prefix, check_seconds=0.2) as a:
            conn = a.connect(viewer())
            await conn.subscribe("audit")
            first = await a.publish("audit", "audit.event", {"n": 0})
            await a.publish("audit", "audit.event", {"n": 1})
            await take(conn, 2)
            broker = RedisBroker(redis_url, key_prefix=prefix)
            meta, stream = broker.meta_key("audit"), broker.stream_key("audit")
            await broker.close()
            sync = redis.Redis.from_url(redis_url)
            try:
                sync.delete(meta)  # the counter alone is lost (eviction): numbering continues, same epoch
                third = await a.publish("audit", "audit.event", {"n": 2})
                assert (third.epoch, third.seq) == (first.epoch, 3)
                assert describe(await take(conn, 1)) == [("m", 3)]
                # An older state comes back (counter and stream at 1): numbers 2..3 would be reused.
                sync.hset(meta, "seq", 1)
                sync.xdel(stream, "2-0", "3-0")
            finally:
                sync.close()
            items = await take(conn, 1, deadline=30)
            assert describe(items) == [("gap", ("epoch", 1, 0))]
            assert items[0].token.split(":")[0] != first.epoch
            fourth = await a.publish("audit", "audit.event", {"n": 3})
            assert fourth.seq == 1 and describe(await take(conn, 1)) == [("m", 1)]
    run(scenario)


def test_concurrent_first_subscriptions_share_one_priming_and_all_receive(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with worker(redis_url, prefix) as a, worker(redis_url, prefix) as b:
            await a.publish("prices.NEW", "price", {"i": 0})
            conns = [b.connect(viewer("viewer", f"u{i}")) for i in range(5)]
            heads = await asyncio.gather(*(c.subscribe("prices.NEW") for c in conns))
            assert len(set(heads)) == 1 and heads[0].endswith(":1")
            await a.publish("prices.NEW", "price", {"i": 1})
            for conn in conns:
                assert describe(await take(conn, 1)) == [("m", 2)]
    run(scenario)


def test_subscribing_while_redis_is_unreachable_fails_cleanly_and_works_once_it_is_back(
    redis_url: str, prefix: str,
) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    proxy = TcpProxy(host, int(port))
    through_proxy = f"redis://127.0.0.1:{proxy.port}/{redis_url.rsplit('/', 1)[-1]}"

    async def scenario() -> None:
        async with worker(through_proxy, prefix, backoff=(0.05, 0.2)) as b:
            proxy.cut()
            conn = b.connect(viewer())
            with pytest.raises(Unavailable):
                await conn.subscribe("audit")
            assert conn.topics == [] and b.stats()["channels"] == 0
            proxy.restore()
            async with asyncio.timeout(30):
                while True:
                    try:
                        await conn.subscribe("audit")
                        break
                    except Unavailable:
                        await asyncio.sleep(0.05)
            await b.publish("audit", "audit.event", {"n": 1})
            assert describe(await take(conn, 1, deadline=30)) == [("m", 1)]
    try:
        run(scenario)
    finally:
        proxy.close()


CHILD = """
import asyncio, sys
from genesis.push import Hub
from genesis.storage.push_redis import RedisBroker

class Viewer:
    subject = "user:child"
    scopes = frozenset({"audit:read"})

async def main(url, prefix):
    async with Hub(broker=RedisBroker(url, key_prefix=prefix, block_ms=200)) as hub:
        conn = hub.connect(Viewer())
        await conn.subscribe("audit")
        print("ready", flush=True)
        async for item in conn:
            print(item.token, flush=True)  # what the client has received and could resume from

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.slow
def test_killing_the_subscribers_worker_mid_stream_loses_nothing_resumption_cannot_recover(
    redis_url: str, prefix: str,
) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, redis_url, prefix], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"

        async def scenario() -> None:
            async with worker(redis_url, prefix) as a:
                for n in range(50):
                    await a.publish("audit", "audit.event", {"n": n})
                tokens = [child.stdout.readline().strip() for _ in range(20)]  # type: ignore[union-attr]
                child.send_signal(signal.SIGKILL)  # mid-stream: it has read 20 of 50
                child.wait(timeout=30)
                for n in range(50, 80):
                    await a.publish("audit", "audit.event", {"n": n})
                assert [int(t.split(":")[1]) for t in tokens] == list(range(1, 21))
                async with worker(redis_url, prefix) as fresh:
                    conn = fresh.connect(viewer())
                    await conn.subscribe("audit", since=tokens[-1])
                    items = await take(conn, 60)
                    assert describe(items) == [("m", s) for s in range(21, 81)]
                    assert [body(i)["data"]["n"] for i in items] == list(range(20, 80))
        run(scenario)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
