"""The audit feed: committed events reach ``audit`` and ``audit.verify`` in commit order from the writer's thread;
a signed head handed over from any thread reaches ``audit.heads`` and its webhook outbox."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson

from genesis.audit import new_event
from genesis.config import Settings
from genesis.push import CloseReason
from genesis.push.urlpolicy import UrlPolicy
from genesis.runtime import Runtime
from genesis.services.auth import Principal
from genesis.services.webhooks import WebhookService
from tests.push.conftest import take


def test_committed_audit_events_and_signed_heads_are_published(settings: Settings) -> None:
    async def scenario() -> None:
        Runtime.migrate(settings)
        runtime = Runtime.build(settings)
        await runtime.start()
        try:
            await runtime.hub.start()
            runtime.audit_feed.start()
            runtime.audit.commit_listeners.append(runtime.audit_feed.committed)  # as the API's lifespan does
            admin = Principal("user:admin", "user", "admin", "admin",
                              frozenset({"audit:read", "webhooks:manage"}), "j", 2**40)
            service = WebhookService(runtime.webhooks, policy=UrlPolicy.allowing(networks=["127.0.0.1/32"]))
            endpoint = (await service.register(principal=admin, url="http://127.0.0.1:9/h", topics=["audit.heads"],
                                               description="")).endpoint
            conn = runtime.hub.connect(admin)
            for topic in ("audit", "audit.verify", "audit.heads"):
                await conn.subscribe(topic)
            committed = [await runtime.recorder.record(new_event(f"test.{i}", message=str(i))) for i in range(3)]
            await runtime.recorder.record(new_event("audit.verify.failed", outcome="failure",
                                                    message="scheduled verification: broken at 2",
                                                    metadata={"verified_seq": 1}))
            items = [orjson.loads(i.payload) for i in await take(conn, 5)]
            by_topic: dict[str, list[Any]] = {}
            for item in items:
                by_topic.setdefault(item["topic"], []).append(item)
            assert [m["data"]["seq"] for m in by_topic["audit"]] == [e.seq for e in committed] + [committed[-1].seq + 1]
            assert by_topic["audit.verify"][0]["type"] == "audit.verify_failed"
            assert by_topic["audit.verify"][0]["data"]["verified_seq"] == 1

            thread = threading.Thread(target=runtime.audit_feed.on_head, args=("genesis/log\n7\nroot\n", 7, "ab" * 32))
            thread.start()
            thread.join()
            head = orjson.loads((await take(conn, 1))[0].payload)
            assert head["topic"] == "audit.heads" and head["data"] == {"note": "genesis/log\n7\nroot\n", "size": 7,
                                                                      "root": "ab" * 32}
            deliveries = await runtime.webhooks.list_deliveries(endpoint.id, status=None, limit=5, before_id=None)
            assert [orjson.loads(d.body)["data"]["size"] for d in deliveries] == [7]
            conn.close(CloseReason.CLIENT)
        finally:
            await runtime.close()

    asyncio.run(scenario())
