"""The bounds of push delivery, in one place, for the settings to map onto later.

Every ring and count in ``genesis.push`` is bounded by one of these values; none grows
with the number of messages published. A subscriber's backlog is a position in its
topic's ring, not a copy, so memory per worker is about ``replay_bytes_total`` for
history plus a constant per connection and subscription.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from genesis.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class PushLimits:
    """Limits of push delivery; the hub enforces those marked (hub), the transport the others.

    Attributes:
        connections_per_principal: open streams (WebSocket + SSE) of one subject per worker (hub).
        subscriptions_per_connection: topics one stream may follow at once (hub).
        client_messages_per_second: subscribe/unsubscribe/ping messages a client may send (transport,
            see :class:`RateBucket`); ``client_messages_burst`` of them at once.
        queue_messages: how far (in messages) a subscription may fall behind its topic before it
            gets a ``lagged`` gap notice and continues from the newest (hub). A backlog costs no
            memory of its own: it is a position in the topic's ring, whose bytes are bounded below.
        replay_count / replay_bytes: messages kept per channel for resumption (hub ring; in Redis
            mode also the approximate ``MAXLEN`` of each stream).
        replay_bytes_total: history the hub keeps across all channels; the least recently published
            channels lose their oldest messages first (hub).
        max_message_bytes: the largest envelope a producer may publish (hub); producers split larger
            batches (e.g. prices) into several messages.
        heartbeat_seconds: the transport sends a ping or SSE comment this often.
        revalidate_seconds: the transport re-checks the connection's token (revocation) this often.
    """

    connections_per_principal: int = 10
    subscriptions_per_connection: int = 50
    client_messages_per_second: float = 10.0
    client_messages_burst: int = 20
    queue_messages: int = 256
    replay_count: int = 1000
    replay_bytes: int = 1024 * 1024
    replay_bytes_total: int = 64 * 1024 * 1024
    max_message_bytes: int = 64 * 1024
    heartbeat_seconds: float = 15.0
    revalidate_seconds: float = 30.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not value > 0:
                raise ConfigurationError(f"push limit {item.name} must be > 0, not {value!r}")
        if self.max_message_bytes > self.replay_bytes:
            raise ConfigurationError("push limit max_message_bytes must fit in replay_bytes")


class RateBucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up (one per connection)."""

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def take(self) -> bool:
        """Spend one token; False when none is left (refuse the message)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until a token is available again."""
        return max(0.0, (1.0 - self._tokens) / self._rate)
