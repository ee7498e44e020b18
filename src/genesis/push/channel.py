"""A channel's replay ring and the subscriptions reading it: the heart of the fan-out.

A subscription is only a position in its channel's ring. Taking its next item either
returns the message after that position or, when that message cannot be had, one gap
notice that accounts for every number skipped (``epoch``, ``lagged`` or ``expired``), so
whatever the interleaving, each number of a channel is accounted for exactly once, in order
(tests/push/test_hub_properties.py).
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING

from genesis.push.envelope import Gap, GapReason, Item, Message, Token
from genesis.push.topics import Topic, visible
from genesis.timeutil import rfc3339

if TYPE_CHECKING:
    import asyncio

    from genesis.push.connection import Connection


class Channel:
    __slots__ = ("bytes", "epoch", "head", "name", "priming", "ring", "subs")

    def __init__(self, name: str, epoch: str) -> None:
        self.name = name
        self.epoch = epoch
        self.head = 0  # the last sequence number known here
        self.ring: collections.deque[Message] = collections.deque()  # contiguous, ends at head
        self.bytes = 0
        self.subs: dict[Subscription, None] = {}  # insertion-ordered set
        self.priming: asyncio.Future[None] | None = None

    def first(self) -> int:
        """The sequence number of the oldest retained message (head + 1 when none is)."""
        return self.ring[0].seq if self.ring else self.head + 1


class Subscription:
    __slots__ = ("allowance", "channel", "conn", "epoch", "position", "ready", "stale", "topic")

    def __init__(self, conn: Connection, topic: Topic, channel: Channel, token: Token | None) -> None:
        self.conn = conn
        self.topic = topic
        self.channel = channel
        self.ready = False
        self.stale = False  # the position is not in the channel's numbering: report an epoch gap first
        self.allowance = 0  # backlog tolerated before "lagged": a resumption's initial backlog
        if token is None:
            self.epoch, self.position = channel.epoch, channel.head
        elif token.epoch == channel.epoch and token.seq <= channel.head:
            self.epoch, self.position = token.epoch, token.seq
            self.allowance = channel.head - token.seq
        else:
            # Another epoch, or a position this epoch never reached (history lost under the same
            # epoch): what followed the token is unknown, so report it rather than guess.
            self.epoch, self.position, self.stale = token.epoch, token.seq, True

    def pending(self) -> bool:
        return self.stale or self.epoch != self.channel.epoch or self.position < self.channel.head

    def take(self, lag_limit: int) -> Item | None:
        """The next item for this subscription, advancing its position (None when caught up)."""
        ch = self.channel
        name = self.topic.name
        if self.stale or self.epoch != ch.epoch:
            to_seq = ch.first() - 1
            self.stale, self.epoch, self.position, self.allowance = False, ch.epoch, to_seq, ch.head - to_seq
            return Gap(name, ch.epoch, 1, to_seq, GapReason.EPOCH, _now())
        while self.position < ch.head:
            if ch.head - self.position > max(lag_limit, self.allowance):
                gap = Gap(name, ch.epoch, self.position + 1, ch.head - 1, GapReason.LAGGED, _now())
                self.position, self.allowance = ch.head - 1, 0
                return gap
            first = ch.first()
            if self.position + 1 < first:
                gap = Gap(name, ch.epoch, self.position + 1, first - 1, GapReason.EXPIRED, _now())
                self.position = first - 1
                return gap
            message = ch.ring[self.position + 1 - first]
            self.position = message.seq
            if message.owner is None or visible(self.conn.viewer, self.topic, message.owner):
                return message
        self.allowance = 0
        return None


def _now() -> str:
    return rfc3339(time.time_ns() // 1000)
