"""Helpers for the push tests: viewers with scopes, and collecting what a connection yields."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest

from genesis.push import Connection, Gap, Item, Message
from genesis.security.scopes import scopes_for


@dataclass(frozen=True, slots=True)
class Viewer:
    subject: str
    scopes: frozenset[str]


def viewer(role: str = "admin", name: str = "alice", kind: str = "user") -> Viewer:
    return Viewer(f"{kind}:{name}", scopes_for(role))


async def take(conn: Connection, count: int, *, deadline: float = 10.0) -> list[Item]:
    """The next ``count`` items of ``conn`` (fails the test when they do not come within ``deadline`` s)."""
    out: list[Item] = []
    async with asyncio.timeout(deadline):
        while len(out) < count:
            item = await conn.receive()
            assert item is not None
            out.append(item)
    return out


async def nothing_more(conn: Connection) -> bool:
    """True when the connection has nothing ready right now (nothing is being held back)."""
    return await conn.receive(idle_seconds=0) is None


def describe(items: list[Item]) -> list[tuple[str, object]]:
    """Compact form for assertions: ("m", seq) for messages, ("gap", reason, from, to) for gaps."""
    out: list[tuple[str, object]] = []
    for item in items:
        if isinstance(item, Message):
            out.append(("m", item.seq))
        else:
            assert isinstance(item, Gap)
            out.append(("gap", (str(item.reason), item.from_seq, item.to_seq)))
    return out


def body(item: Item) -> dict[str, object]:
    parsed = orjson.loads(item.payload)
    assert isinstance(parsed, dict)
    return parsed


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix (``GENESIS_KEY_PREFIX``) of its own for one test; its keys are deleted afterwards."""
    import redis

    name = f"genesis-test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
