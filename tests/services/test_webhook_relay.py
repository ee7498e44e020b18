"""The webhook relay on both backends against real receivers on 127.0.0.1: order, signatures, retries, disabling,
the audit trail as the outbox of the audit topics, a full outbox, rotation, and two relays sharing the work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from genesis.audit import new_event
from genesis.config import Settings
from genesis.push.notice import Notice
from genesis.push.retry import RetrySchedule
from genesis.push.signing import SignatureError, verify
from genesis.push.urlpolicy import UrlPolicy
from genesis.runtime import Runtime
from genesis.services.auth import Principal
from genesis.services.webhook_relay import WebhookRelay
from genesis.services.webhook_sender import WebhookSender
from genesis.services.webhooks import WebhookService
from genesis.timeutil import now_us
from tests.push.wire import WebhookReceiver

ADMIN = Principal(subject="user:admin", kind="user", name="admin", role="admin",
                  scopes=frozenset({"admin", "webhooks:manage", "audit:read", "prices:read", "anomalies:read",
                                    "backtests:read"}), token_jti="j", token_expires_at=2**40)


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Runtime]:
    Runtime.migrate(settings)
    runtime = Runtime.build(settings)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()


class Unjittered(RetrySchedule):
    """Each retry due exactly at its target (the real schedule draws it from its window)."""

    def due_after_first(self, retry: int, rng: Any = None) -> float | None:
        return float(self.targets[retry - 1]) if 1 <= retry <= len(self.targets) else None


def relay_for(runtime: Runtime, *, targets: tuple[int, ...] = (5, 300), limit: int = 100,
              endpoints_per_round: int = 20) -> WebhookRelay:
    sender = WebhookSender(policy=UrlPolicy.allowing(networks=["127.0.0.1/32"]), total_timeout=5)
    return WebhookRelay(store=runtime.webhooks, sender=sender, recorder=runtime.recorder, outbox_limit=limit,
                        schedule=Unjittered(targets), endpoints_per_round=endpoints_per_round)


def notices(n: int, topic: str = "prices.X") -> list[Notice]:
    return [Notice(topic, "price", {"i": i}, now_us()) for i in range(n)]


async def register(runtime: Runtime, url: str, topics: list[str]) -> tuple[str, str]:
    service = WebhookService(runtime.webhooks, policy=UrlPolicy.allowing(networks=["127.0.0.1/32"]))
    made = await service.register(principal=ADMIN, url=url, topics=topics, description="")
    return made.endpoint.id, made.secret


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def test_deliveries_go_out_in_order_signed_and_are_recorded(settings: Settings) -> None:
    async def scenario() -> None:
        with WebhookReceiver() as receiver:
            async with opened(settings) as runtime:
                endpoint, secret = await register(runtime, receiver.url, ["prices.*"])
                other, _ = await register(runtime, receiver.url, ["prices.Y"])  # follows another symbol
                await runtime.webhooks.add_notices(notices(5), limit=100, now_us=now_us())
                relay = relay_for(runtime)
                await relay.round()
                await relay.sender.aclose()
                assert [b["data"]["i"] for b in receiver.bodies()] == [0, 1, 2, 3, 4]
                for item in receiver.received:
                    verify([secret], item.headers, item.body)
                page = await runtime.webhooks.list_deliveries(endpoint, status=None, limit=10, before_id=None)
                assert {d.status for d in page} == {"delivered"} and {d.attempts for d in page} == {1}
                assert await runtime.webhooks.list_deliveries(other, status=None, limit=10, before_id=None) == []
                _, attempts = await runtime.webhooks.get_delivery(endpoint, page[0].msg_id)  # type: ignore[misc]
                assert attempts[0].status == 204 and attempts[0].verdict == "delivered"
    run(scenario)


def test_a_failing_receiver_holds_later_deliveries_back_then_the_endpoint_is_disabled(settings: Settings) -> None:
    async def scenario() -> None:
        with WebhookReceiver(status=500) as receiver:
            async with opened(settings) as runtime:
                endpoint, _ = await register(runtime, receiver.url, ["prices.X"])
                await runtime.webhooks.add_notices(notices(3), limit=100, now_us=now_us())
                relay = relay_for(runtime, targets=(0, 0))  # two retries, due at once
                for _ in range(3):
                    await relay.round()
                await relay.sender.aclose()
                # Only the head of the line was tried, three times: the others kept their order behind it.
                assert [b["data"]["i"] for b in receiver.bodies()] == [0, 0, 0]
                record = await runtime.webhooks.get_endpoint(endpoint)
                assert record is not None and not record.enabled and record.disabled_reason == "failing"
                failed = await runtime.webhooks.list_deliveries(endpoint, status="failed", limit=10, before_id=None)
                assert len(failed) == 1 and failed[0].attempts == 3 and failed[0].last_status == 500
                assert len(await runtime.webhooks.list_deliveries(endpoint, status="pending", limit=10,
                                                                  before_id=None)) == 2
                runtime.recorder.drain()
                events, _ = runtime.audit.store.query(action="webhook.endpoint.disabled")  # type: ignore[union-attr]
                assert events and events[-1].metadata == {"endpoint_id": endpoint, "reason": "failing"}
    run(scenario)


def test_a_retry_waits_for_its_time_and_410_disables_at_once(settings: Settings) -> None:
    async def scenario() -> None:
        answers = iter([503, 410])
        with WebhookReceiver(status=lambda n: next(answers)) as receiver:
            async with opened(settings) as runtime:
                endpoint, _ = await register(runtime, receiver.url, ["prices.X"])
                await runtime.webhooks.add_notices(notices(1), limit=100, now_us=now_us())
                relay = relay_for(runtime, targets=(3600, 7200))
                await relay.round()
                await relay.round()  # the retry is not due: nothing is sent
                assert len(receiver.received) == 1
                record = await runtime.webhooks.get_endpoint(endpoint)
                assert record is not None and record.paused_until_us is not None
                assert record.paused_until_us > now_us() + 1000 * 1_000_000 and record.enabled
                delivery = (await runtime.webhooks.list_deliveries(endpoint, status=None, limit=1, before_id=None))[0]
                await runtime.webhooks.redeliver(endpoint, delivery.msg_id, now_us=now_us())  # by hand: now
                await relay.round()
                await relay.sender.aclose()
                assert len(receiver.received) == 2
                assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
                record = await runtime.webhooks.get_endpoint(endpoint)
                assert record is not None and not record.enabled and record.disabled_reason == "gone"
    run(scenario)


def test_the_audit_trail_is_the_outbox_of_the_audit_topics(settings: Settings) -> None:
    async def scenario() -> None:
        with WebhookReceiver() as receiver:
            async with opened(settings) as runtime:
                everything, _ = await register(runtime, receiver.url, ["audit"])
                await runtime.recorder.record(new_event("test.one", message="one"))
                await runtime.recorder.record(new_event("audit.verify.failed", outcome="failure",
                                                        message="chain broken at 3", metadata={"verified_seq": 2}))
                failures, _ = await register(runtime, receiver.url, ["audit.verify"])  # from its registration on
                await runtime.recorder.record(new_event("audit.verify.failed", outcome="failure", message="again",
                                                        metadata={"verified_seq": 2}))
                relay = relay_for(runtime)
                await relay.round()
                await relay.sender.aclose()
                by_topic: dict[str, list[Any]] = {}
                for body in receiver.bodies():
                    by_topic.setdefault(body["topic"], []).append(body)
                assert [b["data"]["action"] for b in by_topic["audit"]] == [
                    "test.one", "audit.verify.failed", "audit.verify.failed"]
                assert [b["data"]["message"] for b in by_topic["audit.verify"]] == ["again"]
                seqs = [b["data"]["seq"] for b in by_topic["audit"]]
                assert seqs == sorted(seqs)
                assert everything != failures
    run(scenario)


def test_a_full_outbox_disables_the_endpoint_and_keeps_its_backlog(settings: Settings) -> None:
    async def scenario() -> None:
        async with opened(settings) as runtime:
            endpoint, _ = await register(runtime, "http://127.0.0.1:9/never", ["prices.X"])
            first = await runtime.webhooks.add_notices(notices(2), limit=3, now_us=now_us())
            assert first.rows == 2 and not first.disabled
            second = await runtime.webhooks.add_notices(notices(2), limit=3, now_us=now_us())
            assert second.rows == 0 and second.disabled == [endpoint]
            record = await runtime.webhooks.get_endpoint(endpoint)
            assert record is not None and not record.enabled and record.disabled_reason == "outbox-full"
            assert len(await runtime.webhooks.list_deliveries(endpoint, status="pending", limit=10,
                                                              before_id=None)) == 2
            runtime.publisher.outboxed(second)  # what a producer does after its commit: the audit event
            runtime.recorder.drain()
            events, _ = runtime.audit.store.query(action="webhook.endpoint.disabled")  # type: ignore[union-attr]
            assert events[-1].metadata["reason"] == "outbox-full"
    run(scenario)


def test_during_a_rotation_deliveries_carry_both_signatures(settings: Settings) -> None:
    async def scenario() -> None:
        with WebhookReceiver() as receiver:
            async with opened(settings) as runtime:
                endpoint, old = await register(runtime, receiver.url, ["prices.X"])
                service = WebhookService(runtime.webhooks, policy=UrlPolicy.allowing(networks=["127.0.0.1/32"]))
                new = (await service.rotate_secret(endpoint)).secret
                await runtime.webhooks.add_notices(notices(1), limit=100, now_us=now_us())
                relay = relay_for(runtime)
                await relay.round()
                await relay.sender.aclose()
                item = receiver.received[0]
                assert len(item.headers["webhook-signature"].split()) == 2
                verify([old], item.headers, item.body)
                verify([new], item.headers, item.body)
                with pytest.raises(SignatureError):
                    verify(["whsec_" + "A" * 43 + "="], item.headers, item.body)
    run(scenario)


@pytest.mark.postgres
def test_two_relays_share_the_endpoints_and_send_each_delivery_once_in_order(
    make_settings: Callable[..., Settings], pg_database_url: str,
) -> None:
    async def scenario() -> None:
        with WebhookReceiver() as receiver:
            async with opened(make_settings(database_url=pg_database_url)) as runtime:
                ids = [(await register(runtime, receiver.url, [f"prices.S{i}"]))[0] for i in range(6)]
                for i in range(6):
                    await runtime.webhooks.add_notices(notices(10, f"prices.S{i}"), limit=100, now_us=now_us())
                relays = [relay_for(runtime, endpoints_per_round=2), relay_for(runtime, endpoints_per_round=2)]
                leased = []
                for _ in range(4):
                    leased.append(await asyncio.gather(*(r.round() for r in relays)))
                assert leased[0] == [2, 2]  # both relays had work at once: neither waited for the other's lease
                for r in relays:
                    await r.sender.aclose()
                bodies = receiver.bodies()
                assert len(bodies) == 60
                assert len({r.headers["webhook-id"] for r in receiver.received}) == 60
                for i in range(6):
                    assert [b["data"]["i"] for b in bodies if b["topic"] == f"prices.S{i}"] == list(range(10))
                assert len(ids) == 6
    run(scenario)
