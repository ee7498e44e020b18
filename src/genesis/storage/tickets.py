"""Single-use stream tickets: a short-lived stand-in for a bearer token where a client cannot send a header.

A ticket is 256 random bits handed out by an authenticated ``POST /stream/tickets`` and
redeemed once, within its lifetime, by ``/ws`` or ``/stream``. It carries the principal it was
issued to (never the token itself). With Redis (``GENESIS_REDIS_URL``) tickets are shared by
every worker (``SET ... EX`` then ``GETDEL``: redeemed at most once, anywhere); without it they
live in this process's memory, bounded in number.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from genesis.errors import Unavailable

MAX_MEMORY_TICKETS: Final = 10_000


def new_ticket() -> str:
    return secrets.token_urlsafe(32)


def _key(ticket: str) -> str:
    # Keys hold a digest: a dump of Redis keys does not hand out redeemable tickets.
    return hashlib.sha256(ticket.encode()).hexdigest()


class MemoryTickets:
    """Tickets in this process (one worker, no Redis)."""

    def __init__(self, *, max_tickets: int = MAX_MEMORY_TICKETS) -> None:
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_tickets

    async def put(self, ticket: str, value: bytes, ttl_seconds: float) -> None:
        now = time.monotonic()
        while self._items and (len(self._items) >= self._max or next(iter(self._items.values()))[0] <= now):
            self._items.popitem(last=False)  # expired first (insertion order = expiry order), then the oldest
        self._items[_key(ticket)] = (now + ttl_seconds, value)

    async def take(self, ticket: str) -> bytes | None:
        found = self._items.pop(_key(ticket), None)
        if found is None or found[0] <= time.monotonic():
            return None
        return found[1]

    async def close(self) -> None:
        self._items.clear()


class RedisTickets:
    """Tickets in Redis, redeemable on any worker."""

    def __init__(self, url: str, *, key_prefix: str) -> None:
        self._prefix = f"{key_prefix}:ticket:"
        self._client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    async def put(self, ticket: str, value: bytes, ttl_seconds: float) -> None:
        try:
            await self._client.set(self._prefix + _key(ticket), value, px=max(1, int(ttl_seconds * 1000)), nx=True)
        except (RedisError, OSError) as exc:
            raise Unavailable("the ticket store (redis) is unavailable", component="redis") from exc

    async def take(self, ticket: str) -> bytes | None:
        try:
            value = await self._client.getdel(self._prefix + _key(ticket))
        except (RedisError, OSError) as exc:
            raise Unavailable("the ticket store (redis) is unavailable", component="redis") from exc
        return value.encode() if isinstance(value, str) else value

    async def close(self) -> None:
        await self._client.aclose()
