"""Property: whatever the interleaving of publishing and reading, a subscriber accounts for every number once.

Each item a subscription yields starts right after the previous one: a message ``last + 1``, or a gap
notice ``last + 1 .. n``. So nothing is skipped silently, nothing is delivered twice, and the order holds,
with rings, queues and the global budget all far smaller than the traffic.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.push import Gap, Hub, Message, PushLimits
from tests.push.conftest import viewer

Op = tuple[str, int]
ops = st.lists(st.tuples(st.sampled_from(["publish", "read", "other-topic", "resume"]), st.integers(1, 30)),
               max_size=40)


@settings(max_examples=150, deadline=None)
@given(ops=ops, replay=st.integers(1, 20), queue=st.integers(1, 20), budget=st.integers(400, 4000))
def test_every_number_is_accounted_for_exactly_once_in_order(ops: list[Op], replay: int, queue: int,
                                                              budget: int) -> None:
    async def scenario() -> None:
        limits = PushLimits(replay_count=replay, queue_messages=queue, replay_bytes_total=budget,
                            replay_bytes=max(budget, 300), max_message_bytes=300)
        hub = Hub(limits)
        conn = hub.connect(viewer())
        await conn.subscribe("audit")
        last = 0
        published = 0
        for op, n in ops:
            if op == "publish":
                for _ in range(n):
                    await hub.publish("audit", "audit.event", {"n": published})
                    published += 1
            elif op == "other-topic":
                for _ in range(n):
                    await hub.publish("prices.X", "price", {"pad": "p" * 50})  # competes for the budget
            elif op == "resume":
                await conn.subscribe("audit", since=f"{hub.epoch}:{max(0, last - n)}")
                last = max(0, last - n)
            else:
                for _ in range(n):
                    item = await conn.receive(idle_seconds=0)
                    if item is None:
                        break
                    if isinstance(item, Message):
                        assert item.seq == last + 1
                    else:
                        assert isinstance(item, Gap) and item.from_seq == last + 1 and item.to_seq >= last + 1
                    last = item.seq
        while (item := await conn.receive(idle_seconds=0)) is not None:
            assert item.seq >= last + 1 and (isinstance(item, Gap) or item.seq == last + 1)
            last = item.seq
        assert last == published  # everything accounted for, nothing held back
        assert hub.stats()["retained_bytes"] <= budget
    asyncio.run(scenario())
