"""One client stream: its subscriptions, an async iterator of messages and gap notices, and why it closed."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from enum import StrEnum
from typing import TYPE_CHECKING

from genesis.errors import InvalidInput, TooLarge
from genesis.push.channel import Subscription
from genesis.push.envelope import Item, Token, format_cursor, parse_token
from genesis.push.topics import Viewer, authorize, channel_for, parse_topic

if TYPE_CHECKING:
    from genesis.push.hub import Hub


class CloseReason(StrEnum):
    """Why the hub ended a connection; ``ws_code`` is the WebSocket close code to send."""

    REVOKED = "token-revoked"
    EXPIRED = "token-expired"
    SHUTDOWN = "server-shutdown"
    CLIENT = "client-closed"
    POLICY = "policy-violation"

    @property
    def ws_code(self) -> int:
        return {"server-shutdown": 1001, "client-closed": 1000}.get(self.value, 1008)


class ConnectionClosed(Exception):
    """Raised by :meth:`Connection.receive` once the connection is closed."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(str(reason))
        self.reason = reason


class Connection:
    """One client stream: its subscriptions, and an async iterator of messages and gap notices.

    Close it with a reason (``close``); iteration then ends and ``close_reason`` says why.
    """

    __slots__ = ("_hub", "_poked", "_ready", "_subs", "_timer", "_waiter", "close_reason", "viewer")

    def __init__(self, hub: Hub, viewer: Viewer) -> None:
        self._hub = hub
        self.viewer = viewer
        self._subs: dict[str, Subscription] = {}
        self._ready: collections.deque[Subscription] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._poked = False
        self.close_reason: CloseReason | None = None

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    @property
    def topics(self) -> list[str]:
        return list(self._subs)

    async def subscribe(self, topic: str, since: str | Token | None = None) -> str:
        """Follow ``topic`` after ``since`` (a resumption token), or from now; returns the newest message's token.

        Subscribing again to a followed topic moves its position (e.g. to replay after a gap).

        Raises:
            InvalidInput: a bad topic or token. Forbidden: the topic's scope is missing.
            TooLarge: too many subscriptions. Unavailable: the broker cannot be reached.
        """
        if self.closed:
            raise InvalidInput("the connection is closed")
        parsed = parse_topic(topic)
        authorize(self.viewer, parsed)
        token = parse_token(since) if isinstance(since, str) else since
        limit = self._hub.limits.subscriptions_per_connection
        if parsed.name not in self._subs and len(self._subs) >= limit:
            raise TooLarge(f"at most {limit} subscriptions per connection",
                           details={"limit": "subscriptions_per_connection", "value": limit})
        self.unsubscribe(parsed.name)  # first: it may release the very channel attached below
        channel = await self._hub._attach(channel_for(self.viewer, parsed))
        if self.closed:  # closed while the broker primed the channel
            self._hub._detach_if_idle(channel)
            raise InvalidInput("the connection is closed")
        # No await from here on: the channel cannot be released before the subscription holds it.
        sub = Subscription(self, parsed, channel, token)
        channel.subs[sub] = None
        self._subs[parsed.name] = sub
        if sub.pending():
            self._mark(sub)
        return f"{channel.epoch}:{channel.head}"

    def unsubscribe(self, topic: str) -> bool:
        """Stop following ``topic``; False when it was not followed."""
        sub = self._subs.pop(topic, None)
        if sub is None:
            return False
        sub.channel.subs.pop(sub, None)
        if sub.ready:
            with contextlib.suppress(ValueError):
                self._ready.remove(sub)
            sub.ready = False
        self._hub._detach_if_idle(sub.channel)
        return True

    def cursor(self) -> str:
        """Every followed topic's position, as one SSE id (see ``envelope.format_cursor``)."""
        return format_cursor({name: f"{s.epoch}:{s.position}" for name, s in self._subs.items()})

    def close(self, reason: CloseReason) -> None:
        """End the connection: iteration stops, subscriptions are released. Idempotent."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        for name in list(self._subs):
            self.unsubscribe(name)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()
        self._hub._forget(self)

    def poke(self) -> None:
        """Make the pending (or next) :meth:`receive` return None once nothing is ready: a transport's own timer
        (heartbeat, token re-check) wakes its reader this way instead of a timeout around every receive."""
        self._poked = True
        self._wake()

    async def receive(self, idle_seconds: float | None = None) -> Item | None:
        """The next message or gap notice; None after ``idle_seconds`` without one (time for a heartbeat).

        Cancelling it loses nothing: items are taken only when returned.

        Raises:
            ConnectionClosed: the connection is closed (``close_reason`` says why).
        """
        loop = asyncio.get_running_loop()
        deadline = None if idle_seconds is None else loop.time() + idle_seconds
        while True:
            if self.close_reason is not None:
                raise ConnectionClosed(self.close_reason)
            item = self._take()
            if item is not None:
                return item
            if self._poked:
                self._poked = False
                return None
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            self._waiter = loop.create_future()
            try:
                if remaining is None:
                    await self._waiter
                else:
                    async with asyncio.timeout(remaining):
                        await self._waiter
            except TimeoutError:
                return None
            finally:
                self._waiter = None

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> Item:
        try:
            item = await self.receive()
        except ConnectionClosed:
            raise StopAsyncIteration from None
        assert item is not None
        return item

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close(CloseReason.CLIENT)

    def _take(self) -> Item | None:
        ready = self._ready
        lag_limit = self._hub.limits.queue_messages
        while ready:
            sub = ready.popleft()
            item = sub.take(lag_limit)
            if item is None:
                sub.ready = False
                continue
            if sub.pending():
                ready.append(sub)  # round robin across topics
            else:
                sub.ready = False
            return item
        return None

    def _mark(self, sub: Subscription) -> None:
        if not sub.ready:
            sub.ready = True
            self._ready.append(sub)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _expire_at(self, loop: asyncio.AbstractEventLoop, expires_at: float) -> None:
        delay = max(0.0, expires_at - time.time())
        self._timer = loop.call_later(delay, self.close, CloseReason.EXPIRED)
