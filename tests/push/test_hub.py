"""The in-process hub: ordering, replay, gap notices, privacy, limits and closing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from genesis.errors import Forbidden, InvalidInput, RateLimited, TooLarge
from genesis.push import CloseReason, ConnectionClosed, Hub, Message, PushLimits, Snapshot, parse_cursor
from genesis.push.envelope import make_message
from tests.push.conftest import body, describe, nothing_more, take, viewer


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


async def publish_prices(hub: Hub, symbol: str, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        await hub.publish(f"prices.{symbol}", "price", {"i": i})


def test_every_subscriber_gets_every_message_in_order_with_the_topics_numbers() -> None:
    async def scenario() -> None:
        hub = Hub()
        a, b = hub.connect(viewer("viewer", "a")), hub.connect(viewer("viewer", "b"))
        assert await a.subscribe("prices.GOOG") == f"{hub.epoch}:0"
        await b.subscribe("prices.GOOG")
        await publish_prices(hub, "GOOG", 5)
        for conn in (a, b):
            items = await take(conn, 5)
            assert describe(items) == [("m", n) for n in range(1, 6)]
            assert [body(i)["data"] for i in items] == [{"i": n} for n in range(5)]
            assert body(items[0])["id"] == f"{hub.epoch}:1" and body(items[0])["topic"] == "prices.GOOG"
            assert await nothing_more(conn)
    run(scenario)


def test_a_new_subscription_starts_after_the_newest_message() -> None:
    async def scenario() -> None:
        hub = Hub()
        await publish_prices(hub, "GOOG", 3)
        conn = hub.connect(viewer())
        assert await conn.subscribe("prices.GOOG") == f"{hub.epoch}:3"
        assert await nothing_more(conn)
        await publish_prices(hub, "GOOG", 1)
        assert describe(await take(conn, 1)) == [("m", 4)]
    run(scenario)


def test_resuming_from_a_token_replays_exactly_what_was_missed_then_continues_live() -> None:
    async def scenario() -> None:
        hub = Hub()
        first = hub.connect(viewer())
        await first.subscribe("prices.GOOG")
        await publish_prices(hub, "GOOG", 3)
        seen = await take(first, 3)
        first.close(CloseReason.CLIENT)
        await publish_prices(hub, "GOOG", 4, start=3)  # published while the client was away
        again = hub.connect(viewer())
        await again.subscribe("prices.GOOG", since=seen[-1].token)
        await publish_prices(hub, "GOOG", 1, start=7)
        items = await take(again, 5)
        assert describe(items) == [("m", n) for n in range(4, 9)]
        assert [body(i)["data"]["i"] for i in items] == [3, 4, 5, 6, 7]
        assert await nothing_more(again)
    run(scenario)


def test_a_token_older_than_the_replay_ring_gets_an_expired_gap_then_what_is_retained() -> None:
    async def scenario() -> None:
        hub = Hub(PushLimits(replay_count=5))
        await publish_prices(hub, "GOOG", 12)
        conn = hub.connect(viewer())
        await conn.subscribe("prices.GOOG", since=f"{hub.epoch}:2")
        assert describe(await take(conn, 6)) == [("gap", ("expired", 3, 7)), ("m", 8), ("m", 9), ("m", 10),
                                                  ("m", 11), ("m", 12)]
    run(scenario)


def test_a_token_from_another_epoch_gets_an_epoch_gap_instead_of_messages_that_share_its_numbers() -> None:
    async def scenario() -> None:
        before = Hub()
        await publish_prices(before, "GOOG", 5)
        old_token = f"{before.epoch}:5"
        restarted = Hub()  # a restarted worker: new epoch, numbering from 1 again
        await publish_prices(restarted, "GOOG", 2)
        conn = restarted.connect(viewer())
        await conn.subscribe("prices.GOOG", since=old_token)
        items = await take(conn, 3)
        assert describe(items) == [("gap", ("epoch", 1, 0)), ("m", 1), ("m", 2)]
        assert body(items[0])["data"]["epoch"] == restarted.epoch
    run(scenario)


def test_a_token_beyond_the_newest_message_of_the_same_epoch_is_not_trusted() -> None:
    async def scenario() -> None:
        hub = Hub()
        await publish_prices(hub, "GOOG", 2)
        conn = hub.connect(viewer())
        await conn.subscribe("prices.GOOG", since=f"{hub.epoch}:50")
        assert describe(await take(conn, 3)) == [("gap", ("epoch", 1, 0)), ("m", 1), ("m", 2)]
    run(scenario)


def test_a_subscriber_that_falls_behind_gets_a_lagged_gap_and_continues_from_the_newest() -> None:
    async def scenario() -> None:
        hub = Hub(PushLimits(queue_messages=10))
        slow, fast = hub.connect(viewer("viewer", "slow")), hub.connect(viewer("viewer", "fast"))
        await slow.subscribe("prices.GOOG")
        await fast.subscribe("prices.GOOG")
        received: list[int] = []
        for i in range(300):
            await hub.publish("prices.GOOG", "price", {"i": i})
            item = await fast.receive(idle_seconds=0)
            assert isinstance(item, Message)
            received.append(item.seq)
        assert received == list(range(1, 301))  # the slow one does not hold the fast one back
        assert describe(await take(slow, 2)) == [("gap", ("lagged", 1, 299)), ("m", 300)]
        await publish_prices(hub, "GOOG", 2)
        assert describe(await take(slow, 2)) == [("m", 301), ("m", 302)]
        # Resubscribing from before the gap replays what the ring still holds.
        await slow.subscribe("prices.GOOG", since=f"{hub.epoch}:295")
        assert describe(await take(slow, 7)) == [("m", n) for n in range(296, 303)]
    run(scenario)


def test_replay_memory_is_bounded_per_channel_and_in_total() -> None:
    async def scenario() -> None:
        limits = PushLimits(replay_count=50, replay_bytes=4096, replay_bytes_total=10_000, max_message_bytes=1024)
        hub = Hub(limits)
        for i in range(200):
            await hub.publish("prices.A", "price", {"i": i, "pad": "x" * 100})
        stats = hub.stats()
        assert stats["retained_messages"] <= 50 and stats["retained_bytes"] <= 4096
        for symbol in ("B", "C", "D"):
            for i in range(60):
                await hub.publish(f"prices.{symbol}", "price", {"i": i, "pad": "x" * 100})
        assert hub.stats()["retained_bytes"] <= 10_000
        # The least recently published channel lost its history first; the newest kept the most.
        conn = hub.connect(viewer())
        await conn.subscribe("prices.A", since=f"{hub.epoch}:0")
        await conn.subscribe("prices.D", since=f"{hub.epoch}:0")
        items = await take(conn, 2)
        kinds = {body(i)["topic"]: describe([i])[0] for i in items}
        assert kinds["prices.A"] == ("gap", ("expired", 1, 200))
        assert kinds["prices.D"][0] in ("gap", "m")
    run(scenario)


def test_backtests_reach_their_owner_and_admins_only_each_numbered_without_gaps() -> None:
    async def scenario() -> None:
        hub = Hub()
        alice, bob, admin = (hub.connect(viewer("trader", "alice")), hub.connect(viewer("trader", "bob")),
                             hub.connect(viewer("admin", "root")))
        for conn in (alice, bob, admin):
            await conn.subscribe("backtests")
        for owner in ("user:alice", "user:bob", "user:alice"):
            await hub.publish("backtests", "backtest.completed", {"owner": owner}, owner=owner)
        got_alice, got_bob, got_admin = await take(alice, 2), await take(bob, 1), await take(admin, 3)
        assert [body(i)["data"]["owner"] for i in got_alice] == ["user:alice", "user:alice"]
        assert describe(got_alice) == [("m", 1), ("m", 2)]  # her own numbering: no hint of bob's run
        assert [body(i)["data"]["owner"] for i in got_bob] == ["user:bob"]
        assert describe(got_admin) == [("m", 1), ("m", 2), ("m", 3)]
        assert all(body(i)["topic"] == "backtests" for i in got_alice + got_bob + got_admin)
        for conn in (alice, bob, admin):
            assert await nothing_more(conn)
    run(scenario)


def test_subscribing_needs_the_topics_scope_and_a_valid_topic_and_token() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer("trader"))
        with pytest.raises(Forbidden, match="audit:read"):
            await conn.subscribe("audit")
        with pytest.raises(InvalidInput, match="unknown topic"):
            await conn.subscribe("orders")
        with pytest.raises(InvalidInput, match="resumption token"):
            await conn.subscribe("prices.GOOG", since="yesterday")
        assert conn.topics == []
    run(scenario)


def test_the_hub_enforces_subscriptions_per_connection_and_connections_per_principal() -> None:
    async def scenario() -> None:
        hub = Hub(PushLimits(subscriptions_per_connection=2, connections_per_principal=2))
        conn = hub.connect(viewer())
        await conn.subscribe("prices.A")
        await conn.subscribe("prices.B")
        await conn.subscribe("prices.B", since=f"{hub.epoch}:0")  # moving a subscription is not a new one
        with pytest.raises(TooLarge, match="at most 2 subscriptions"):
            await conn.subscribe("prices.C")
        other = hub.connect(viewer())
        with pytest.raises(RateLimited, match="at most 2 open streams") as refused:
            hub.connect(viewer())
        assert refused.value.details["limit"] == "connections_per_principal"
        hub.connect(viewer("admin", "someone-else"))  # counted per principal
        other.close(CloseReason.CLIENT)
        hub.connect(viewer())  # a closed connection frees its slot
    run(scenario)


def test_closing_ends_iteration_with_the_reason_and_releases_subscriptions() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer("viewer", "alice"))
        await conn.subscribe("prices.GOOG")
        reader = asyncio.create_task(take(conn, 1))
        await asyncio.sleep(0)
        assert hub.close_where(lambda v: v.subject == "user:alice", CloseReason.REVOKED) == 1
        with pytest.raises(ConnectionClosed) as closed:
            await reader
        assert closed.value.reason is CloseReason.REVOKED and CloseReason.REVOKED.ws_code == 1008
        assert conn.close_reason is CloseReason.REVOKED and conn.topics == []
        assert [i async for i in conn] == []
        assert hub.stats()["subscriptions"] == 0 and hub.stats()["connections"] == 0
        with pytest.raises(InvalidInput, match="closed"):
            await conn.subscribe("prices.GOOG")
    run(scenario)


def test_a_connection_closes_itself_when_its_token_expires() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer(), expires_at=time.time() + 0.2)
        await conn.subscribe("prices.GOOG")
        async with asyncio.timeout(10):
            items = [item async for item in conn]
        assert items == [] and conn.close_reason is CloseReason.EXPIRED
    run(scenario)


def test_an_idle_receive_returns_none_and_cancelling_a_receive_loses_nothing() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer())
        await conn.subscribe("prices.GOOG")
        assert await conn.receive(idle_seconds=0.05) is None
        waiting = asyncio.create_task(conn.receive())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await publish_prices(hub, "GOOG", 1)
        assert describe(await take(conn, 1)) == [("m", 1)]
    run(scenario)


def test_topics_of_one_connection_are_served_in_turn() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer())
        await conn.subscribe("prices.A")
        await conn.subscribe("prices.B")
        await publish_prices(hub, "A", 3)
        await publish_prices(hub, "B", 3)
        topics = [body(i)["topic"] for i in await take(conn, 6)]
        assert topics == ["prices.A", "prices.B"] * 3
    run(scenario)


def test_the_cursor_resumes_every_topic_of_a_stream_where_it_stopped() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer())
        await conn.subscribe("prices.A")
        await conn.subscribe("audit")
        await publish_prices(hub, "A", 2)
        await hub.publish("audit", "audit.event", {"n": 1})
        await take(conn, 3)
        cursor = conn.cursor()
        assert cursor == f"audit@{hub.epoch}:1,prices.A@{hub.epoch}:2"
        conn.close(CloseReason.CLIENT)
        await publish_prices(hub, "A", 1)
        await hub.publish("audit", "audit.event", {"n": 2})
        again = hub.connect(viewer())
        for topic, token in parse_cursor(cursor, max_topics=10).items():
            await again.subscribe(topic, since=token)
        assert sorted((body(i)["topic"], body(i)["seq"]) for i in await take(again, 2)) == [
            ("audit", 2), ("prices.A", 3)]
    run(scenario)


def test_publishing_refuses_bad_types_unserialisable_data_and_oversized_messages() -> None:
    async def scenario() -> None:
        hub = Hub(PushLimits(max_message_bytes=1024))
        with pytest.raises(InvalidInput, match="carries"):
            await hub.publish("prices.GOOG", "anomaly", {})
        with pytest.raises(InvalidInput, match="JSON"):
            await hub.publish("prices.GOOG", "price", {"x": object()})
        with pytest.raises(TooLarge, match="at most"):
            await hub.publish("prices.GOOG", "price", {"x": "y" * 2000})
        assert hub.stats()["retained_messages"] == 0
    run(scenario)


def test_a_broker_rebase_gives_subscribers_an_epoch_gap_then_the_new_history() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer())
        await conn.subscribe("audit")
        await hub.publish("audit", "audit.event", {"n": 1})
        await take(conn, 1)
        fresh = [make_message(topic="audit", epoch="NEW", seq=s, type="audit.event", time="t", data_json=b"{}",
                              owner=None) for s in (1, 2)]
        hub.rebase("audit", Snapshot("NEW", 2, fresh))
        items = await take(conn, 3)
        assert describe(items) == [("gap", ("epoch", 1, 0)), ("m", 1), ("m", 2)]
        assert items[-1].token == "NEW:2"
    run(scenario)


def test_resubscribing_to_a_topic_that_has_no_messages_yet_still_receives_later_ones() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer())
        await conn.subscribe("audit")
        await conn.subscribe("audit", since=f"{hub.epoch}:0")  # found by test_hub_properties
        await hub.publish("audit", "audit.event", {"n": 1})
        assert describe(await take(conn, 1)) == [("m", 1)]
    run(scenario)


def test_a_poke_makes_a_waiting_receive_return_none_but_never_hides_a_message() -> None:
    async def scenario() -> None:
        hub = Hub()
        conn = hub.connect(viewer())
        await conn.subscribe("prices.P")
        waiting = asyncio.create_task(conn.receive())
        await asyncio.sleep(0)
        conn.poke()  # a transport's timer: heartbeat or re-check due
        assert await asyncio.wait_for(waiting, 5) is None
        await hub.publish("prices.P", "price", {"i": 1})
        conn.poke()
        assert describe([await conn.receive()]) == [("m", 1)]  # the message first
        assert await conn.receive() is None  # then the poke
        conn.close(CloseReason.CLIENT)
    run(scenario)
