"""In-process fan-out: channels with a bounded replay ring, connections that read them at their own pace.

Design: a channel keeps its newest messages in a ring (bounded by count and bytes, and all
rings together by ``replay_bytes_total``). A subscription is only a *position* in its
channel's ring, so replay after a reconnect and live delivery are one code path, an idle
subscriber costs a few hundred bytes, and a message is stored once however many read it.
Publishing appends to the ring and marks each subscription ready (O(subscribers), no copy);
the connection's iterator takes the next message of each ready subscription in turn.

Nothing is lost silently: a subscription that falls more than ``queue_messages`` behind
gets a ``lagged`` gap notice and continues from the newest message; one whose next message
left the ring gets ``expired``; one whose token is from another epoch gets ``epoch``.

Without a broker the hub numbers messages itself (one epoch per hub, so per process). With
a :class:`Broker` (``genesis.storage.push_redis.RedisBroker``) publishing goes through the
broker, which numbers messages for every worker alike and feeds each hub in the same order.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from genesis.errors import InvalidInput, RateLimited, TooLarge, Unavailable
from genesis.push.channel import Channel
from genesis.push.connection import CloseReason, Connection
from genesis.push.envelope import Message, make_message
from genesis.push.limits import PushLimits
from genesis.push.topics import Viewer, channels_for_publish, check_type, parse_topic
from genesis.timeutil import rfc3339

log = logging.getLogger("genesis.push")
# The envelope around data, topic and type at most: keys, quotes, time, epoch and two sequence numbers.
_ENVELOPE_BYTES = 160


def new_epoch() -> str:
    """A fresh epoch name (72 random bits, URL-safe)."""
    return secrets.token_urlsafe(9)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A channel's state from the broker: its epoch, last sequence number and newest messages."""

    epoch: str
    head: int
    messages: list[Message]  # ascending and contiguous, the last one numbered ``head`` (or empty)


class Feed(Protocol):
    """What a broker calls on the hub it feeds (from the hub's event loop)."""

    def deliver(self, channel: str, message: Message) -> None: ...
    def rebase(self, channel: str, snapshot: Snapshot) -> None: ...


class Broker(Protocol):
    """Numbers and carries messages across workers (see ``genesis.storage.push_redis``)."""

    async def start(self, feed: Feed) -> None: ...
    async def append(
        self, channel: str, *, topic: str, type: str, time: str, data_json: bytes, owner: str | None,
    ) -> Message: ...
    async def watch(self, channel: str, *, count: int) -> Snapshot: ...
    def unwatch(self, channel: str) -> None: ...
    async def close(self) -> None: ...

class Hub:
    """The fan-out of one worker: publish to topics, connect subscribers."""

    def __init__(self, limits: PushLimits | None = None, *, broker: Broker | None = None) -> None:
        self.limits = limits or PushLimits()
        self.epoch = new_epoch()  # in-process numbering only; with a broker each channel has its own
        self._broker = broker
        self._channels: dict[str, Channel] = {}
        self._recent: dict[str, None] = {}  # channels by last append, oldest first (eviction order)
        self._bytes = 0
        self._connections: dict[str, set[Connection]] = {}
        self._started = broker is None
        self._closed = False

    async def start(self) -> None:
        """Start the broker's feed (a no-op without a broker)."""
        if not self._started:
            assert self._broker is not None
            await self._broker.start(self)
            self._started = True

    async def close(self) -> None:
        """Close every connection (``server-shutdown``) and stop the broker."""
        self._closed = True
        self.close_where(lambda _: True, CloseReason.SHUTDOWN)
        if self._broker is not None:
            await self._broker.close()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- publishing ---------------------------------------------------------------------------

    async def publish(
        self, topic: str, type: str, data: Any, *, owner: str | None = None, at_us: int | None = None,
    ) -> Message:
        """Publish ``data`` on ``topic`` as a message of ``type``; returns it as numbered on the topic.

        Args:
            topic: e.g. ``anomalies.GOOG``. type: one of the topic's types (``topics.FAMILIES``).
            data: JSON-serialisable (numpy values allowed). owner: the owner's subject, for
                ``backtests`` only. at_us: the event's time (default now), microseconds since the epoch.

        Raises:
            InvalidInput: bad topic, type, owner or data. TooLarge: the envelope exceeds
            ``max_message_bytes``. Unavailable: the broker failed (the message may not be published).
        """
        parsed = parse_topic(topic)
        check_type(parsed, type)
        channels = channels_for_publish(parsed, owner)
        try:
            data_json = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError as exc:
            raise InvalidInput(f"message data is not JSON-serialisable: {exc}") from None
        limit = self.limits.max_message_bytes
        size = len(data_json) + _ENVELOPE_BYTES + len(parsed.name) + len(type)
        if size > limit:
            raise TooLarge(f"a message on {parsed.name!r} would be {size} bytes; at most {limit}",
                           details={"limit": "max_message_bytes", "value": limit})
        stamp = rfc3339(time.time_ns() // 1000 if at_us is None else at_us)
        published: list[Message] = []
        for name in channels:
            if self._broker is None:
                channel = self._channels.get(name) or self._new_channel(name, self.epoch)
                message = make_message(topic=parsed.name, epoch=channel.epoch, seq=channel.head + 1, type=type,
                                       time=stamp, data_json=data_json, owner=owner)
                self._append(channel, message)
            else:
                message = await self._broker.append(name, topic=parsed.name, type=type, time=stamp,
                                                    data_json=data_json, owner=owner)
            published.append(message)
        return published[0]

    # --- connections --------------------------------------------------------------------------

    def connect(self, viewer: Viewer, *, expires_at: float | None = None) -> Connection:
        """A new connection for ``viewer``; it closes itself at ``expires_at`` (Unix seconds, the token's exp).

        Raises:
            RateLimited: the viewer has ``connections_per_principal`` open connections on this worker.
            Unavailable: the hub is shutting down.
        """
        if self._closed:
            raise Unavailable("the push hub is shutting down", component="push", retry_after=5)
        mine = self._connections.setdefault(viewer.subject, set())
        limit = self.limits.connections_per_principal
        if len(mine) >= limit:
            raise RateLimited(f"at most {limit} open streams per principal", retry_after=5, limit=limit,
                              details={"limit": "connections_per_principal", "value": limit})
        conn = Connection(self, viewer)
        mine.add(conn)
        if expires_at is not None:
            conn._expire_at(asyncio.get_running_loop(), expires_at)
        return conn

    def close_where(self, predicate: Callable[[Viewer], bool], reason: CloseReason) -> int:
        """Close every connection whose viewer matches (e.g. a revoked token's subject); returns how many."""
        doomed = [c for conns in self._connections.values() for c in conns if predicate(c.viewer)]
        for conn in doomed:
            conn.close(reason)
        return len(doomed)

    def stats(self) -> Mapping[str, int]:
        """Counts for metrics: connections, channels, subscriptions, retained messages and bytes."""
        return {
            "connections": sum(len(c) for c in self._connections.values()),
            "channels": len(self._channels),
            "subscriptions": sum(len(ch.subs) for ch in self._channels.values()),
            "retained_messages": sum(len(ch.ring) for ch in self._channels.values()),
            "retained_bytes": self._bytes,
        }

    # --- the broker's feed ----------------------------------------------------------------------

    def deliver(self, channel: str, message: Message) -> None:
        """Append a message the broker numbered (duplicates ignored; a hole empties the ring)."""
        ch = self._channels.get(channel)
        if ch is None or ch.priming is not None:
            return
        if message.epoch != ch.epoch:
            self.rebase(channel, Snapshot(message.epoch, message.seq, [message]))
            return
        if message.seq > ch.head:
            self._append(ch, message)

    def rebase(self, channel: str, snapshot: Snapshot) -> None:
        """Replace a channel's history (a new epoch); its subscribers get ``epoch`` gap notices."""
        ch = self._channels.get(channel)
        if ch is None:
            return
        self._drop_ring(ch)
        ch.epoch, ch.head = snapshot.epoch, 0
        self._load(ch, snapshot)
        for sub in ch.subs:
            sub.conn._mark(sub)

    # --- internals ------------------------------------------------------------------------------

    def _new_channel(self, name: str, epoch: str) -> Channel:
        channel = self._channels[name] = Channel(name, epoch)
        return channel

    async def _attach(self, name: str) -> Channel:
        while True:
            channel = self._channels.get(name)
            if channel is None:
                break
            if channel.priming is None:
                return channel
            # Primed by another subscription: wait, then look again (it may have been released meanwhile).
            await asyncio.shield(channel.priming)
        channel = self._new_channel(name, self.epoch)
        if self._broker is not None:
            channel.priming = asyncio.get_running_loop().create_future()
            try:
                snapshot = await self._broker.watch(name, count=self.limits.replay_count)
            except BaseException as exc:
                del self._channels[name]
                channel.priming.set_exception(
                    exc if isinstance(exc, Unavailable) else Unavailable("the push broker is unavailable",
                                                                         component="redis"))
                channel.priming.exception()  # retrieved: no "never retrieved" warning if nobody waits
                raise
            channel.epoch = snapshot.epoch
            self._load(channel, snapshot)
            priming, channel.priming = channel.priming, None
            priming.set_result(None)
        return channel

    def _load(self, ch: Channel, snapshot: Snapshot) -> None:
        ch.head = snapshot.head
        for message in snapshot.messages[-self.limits.replay_count:]:
            if ch.ring and message.seq != ch.ring[-1].seq + 1:
                self._drop_ring(ch)  # keep only what follows a hole: the ring is contiguous
            ch.ring.append(message)
            ch.bytes += len(message.payload)
            self._bytes += len(message.payload)
        if ch.ring and ch.ring[-1].seq != ch.head:
            self._drop_ring(ch)
        self._trim(ch)
        if ch.ring:
            self._touch(ch)
        if self._bytes > self.limits.replay_bytes_total:
            self._evict()

    def _detach_if_idle(self, ch: Channel) -> None:
        if ch.subs or ch.priming is not None or self._channels.get(ch.name) is not ch:
            return
        if self._broker is not None:
            # The broker keeps the history and the numbering; this worker needs neither now.
            self._drop_ring(ch)
            del self._channels[ch.name]
            self._broker.unwatch(ch.name)
        elif ch.head == 0:
            del self._channels[ch.name]  # never published: nothing to keep

    def _forget(self, conn: Connection) -> None:
        mine = self._connections.get(conn.viewer.subject)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self._connections[conn.viewer.subject]

    def _append(self, ch: Channel, message: Message) -> None:
        if message.seq != ch.head + 1:
            self._drop_ring(ch)  # a hole: the ring holds contiguous messages only
        ch.ring.append(message)
        ch.head = message.seq
        size = len(message.payload)
        ch.bytes += size
        self._bytes += size
        self._trim(ch)
        self._touch(ch)
        if self._bytes > self.limits.replay_bytes_total:
            self._evict()
        for sub in ch.subs:
            if not sub.ready:
                sub.conn._mark(sub)

    def _trim(self, ch: Channel) -> None:
        limits = self.limits
        while ch.ring and (len(ch.ring) > limits.replay_count or ch.bytes > limits.replay_bytes):
            self._pop_oldest(ch)

    def _touch(self, ch: Channel) -> None:
        self._recent.pop(ch.name, None)
        self._recent[ch.name] = None

    def _evict(self) -> None:
        """Drop the oldest messages of the least recently published channels until within budget."""
        for name in list(self._recent):
            ch = self._channels.get(name)
            while ch is not None and ch.ring and self._bytes > self.limits.replay_bytes_total:
                self._pop_oldest(ch)
            if ch is None or not ch.ring:
                del self._recent[name]
            if self._bytes <= self.limits.replay_bytes_total:
                return

    def _pop_oldest(self, ch: Channel) -> None:
        size = len(ch.ring.popleft().payload)
        ch.bytes -= size
        self._bytes -= size

    def _drop_ring(self, ch: Channel) -> None:
        self._bytes -= ch.bytes
        ch.bytes = 0
        ch.ring.clear()
        self._recent.pop(ch.name, None)
