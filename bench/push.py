"""Push fan-out: memory per idle subscriber, and publish-to-receipt latency to many subscribers.

* Memory: 5,000 connections, each subscribed to one topic (spread over 50 symbols), measured
  with tracemalloc as the growth from an empty hub; anchored on 5,000 bare ``asyncio.Queue``
  objects (what a queue-per-subscriber design pays before any message).
* Fan-out: 1,000 subscriber tasks each awaiting ``Connection.receive()``; one message published;
  the latency of each subscriber is from just before ``publish`` to its task getting the message.
  Fifty rounds; p99 over all receipts. Anchored on the same tasks awaiting bare
  ``asyncio.Queue.get()`` with the publisher doing ``put_nowait`` into every queue.
* Through Redis (when ``GENESIS_BENCH_REDIS_URL`` is set): the same fan-out, published on one
  hub and received on another through the Redis broker, anchored on the in-process fan-out.

Then the same questions against a live server, with real connections (``bench/push_live.py``).

Run alone with ``python -m bench.push``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.core import Figure, Scale, Target, skipped
from genesis.push import CloseReason, Connection, Hub, PushLimits


@dataclass(frozen=True, slots=True)
class _Viewer:
    subject: str
    scopes: frozenset[str]


VIEWER_SCOPES = frozenset({"prices:read", "anomalies:read"})


def _traced(build: Callable[[], Awaitable[Any]]) -> float:
    """Bytes allocated (and still alive) by ``build``, after a collection."""

    async def measure() -> float:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = await build()
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        del kept
        return float(after - before)

    return asyncio.run(measure())


def memory_figure(n: int) -> Figure:
    limits = PushLimits(connections_per_principal=n + 1)

    async def hub_side() -> Any:
        hub = Hub(limits)
        conns = []
        for i in range(n):
            conn = hub.connect(_Viewer(f"user:u{i}", VIEWER_SCOPES), expires_at=time.time() + 3600)
            await conn.subscribe(f"anomalies.S{i % 50}")
            conns.append(conn)
        return hub, conns

    async def queue_side() -> Any:
        return [asyncio.Queue[bytes](maxsize=256) for _ in range(n)]

    ours = _traced(hub_side) / n / 1024
    anchor = _traced(queue_side) / n / 1024
    return Figure(f"memory per idle subscriber ({n:,} in one hub)", ours, "KB", "bare asyncio.Queue", anchor, "KB",
                  Target("value", "<=", 20, "KB"), note="tracemalloc growth; each has a token-expiry timer")


async def _fanout_hub(hub_pub: Hub, hub_sub: Hub, n: int, rounds: int) -> list[float]:
    conns: list[Connection] = []
    for i in range(n):
        conn = hub_sub.connect(_Viewer(f"user:u{i}", VIEWER_SCOPES))
        await conn.subscribe("anomalies.GOOG")
        conns.append(conn)
    latencies: list[float] = []
    began = [0.0]  # set just before each publish; read by the receivers after their receipt

    async def receive(conn: Connection) -> float:
        item = await conn.receive()
        assert item is not None
        return time.perf_counter() - began[0]

    for r in range(rounds):
        tasks = [asyncio.create_task(receive(c)) for c in conns]
        await asyncio.sleep(0)  # every task is waiting
        began[0] = time.perf_counter()
        await hub_pub.publish("anomalies.GOOG", "anomaly", {"round": r, "score": 4.2})
        latencies += await asyncio.gather(*tasks)
    for conn in conns:
        conn.close(CloseReason.CLIENT)
    return latencies


async def _fanout_queues(n: int, rounds: int) -> list[float]:
    queues = [asyncio.Queue[bytes]() for _ in range(n)]
    latencies: list[float] = []
    began = [0.0]

    async def receive(queue: asyncio.Queue[bytes]) -> float:
        await queue.get()
        return time.perf_counter() - began[0]

    for r in range(rounds):
        tasks = [asyncio.create_task(receive(q)) for q in queues]
        await asyncio.sleep(0)
        began[0] = time.perf_counter()
        payload = f'{{"round":{r}}}'.encode()
        for queue in queues:
            queue.put_nowait(payload)
        latencies += await asyncio.gather(*tasks)
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000 if len(values) >= 2 else values[0] * 1000


def fanout_figures(n: int, rounds: int) -> list[Figure]:
    limits = PushLimits(connections_per_principal=n + 1)

    async def in_process() -> list[float]:
        hub = Hub(limits)
        return await _fanout_hub(hub, hub, n, rounds)

    ours = p99(asyncio.run(in_process()))
    anchor = p99(asyncio.run(_fanout_queues(n, rounds)))
    figures = [Figure(f"fan-out p99, publish to receipt ({n:,} subscribers, in-process)", ours, "ms",
                      "bare asyncio.Queue fan-out", anchor, "ms", Target("value", "<", 50, "ms"),
                      note=f"{rounds} rounds")]
    url = os.environ.get("GENESIS_BENCH_REDIS_URL")
    if not url:
        figures.append(skipped(f"fan-out p99 through Redis ({n:,} subscribers on another worker)",
                               "set GENESIS_BENCH_REDIS_URL to run it"))
        return figures

    async def through_redis() -> list[float]:
        from genesis.storage.push_redis import RedisBroker

        prefix = f"genesis-bench-{uuid.uuid4().hex[:8]}"
        async with Hub(limits, broker=RedisBroker(url, key_prefix=prefix)) as a, \
                Hub(limits, broker=RedisBroker(url, key_prefix=prefix)) as b:
            try:
                return await _fanout_hub(a, b, n, rounds)
            finally:
                import redis.asyncio as aioredis

                client = aioredis.Redis.from_url(url)
                keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
                if keys:
                    await client.delete(*keys)
                await client.aclose()

    figures.append(Figure(f"fan-out p99 through Redis ({n:,} subscribers on another worker)",
                          p99(asyncio.run(through_redis())), "ms", "in-process fan-out", ours, "ms",
                          Target("value", "<", 50, "ms"), note=f"{rounds} rounds"))
    return figures


def run(scale: Scale) -> list[Figure]:
    from bench import push_live

    return [memory_figure(scale.pick(5000, 200)), *fanout_figures(scale.pick(1000, 50), scale.pick(50, 3)),
            *push_live.run(scale)]


if __name__ == "__main__":
    from bench.core import FULL, TINY
    from bench.report import text_table

    print(text_table(run(TINY if "--tiny" in sys.argv else FULL)))
