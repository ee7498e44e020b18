"""What a producer announces: one notice, delivered on streams (numbered by the hub) and as webhooks (the outbox).

A :class:`Notice` is made inside the transaction that produces it (prices, anomalies,
backtests) or from what was committed (audit events, signed heads). The same notice
becomes a stream message after the commit (``Hub.publish``) and, for each webhook endpoint
that follows its topic, one outbox row written in the producing transaction.

The webhook body follows Standard Webhooks: ``{"type", "timestamp", "topic", "data"}``,
``timestamp`` being the time of the event (RFC 3339, UTC), not of the attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from genesis.push.topics import FAMILIES, Topic, Viewer, parse_topic, visible
from genesis.timeutil import rfc3339

WILDCARD: Final = ".*"


@dataclass(frozen=True, slots=True)
class Notice:
    """One announcement: ``data`` of ``type`` on ``topic`` at ``at_us``; ``owner`` for private topics."""

    topic: str
    type: str
    data: Mapping[str, Any]
    at_us: int
    owner: str | None = None

    def webhook_body(self) -> bytes:
        """The JSON body of its webhook delivery (the exact bytes that are signed)."""
        return orjson.dumps({"type": self.type, "timestamp": rfc3339(self.at_us), "topic": self.topic,
                             "data": self.data}, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_subscription(text: object) -> str:
    """A webhook endpoint's topic: a topic name, or ``<family>.*`` for every symbol of a per-symbol family.

    Raises:
        InvalidInput: neither (the message names the rule).
    """
    if isinstance(text, str) and text.endswith(WILDCARD):
        family = FAMILIES.get(text[: -len(WILDCARD)])
        if family is not None and family.per_symbol:
            return text
    return parse_topic(text).name


def matches(subscription: str, topic: str) -> bool:
    """Whether an endpoint following ``subscription`` receives notices on ``topic``."""
    if subscription.endswith(WILDCARD):
        return topic.startswith(subscription[:-1])  # keeps the dot: "prices.*" matches "prices.X" only
    return subscription == topic


def deliverable(viewer: Viewer, subscriptions: Iterable[str], notice: Notice) -> bool:
    """Whether an endpoint (acting as ``viewer``) following ``subscriptions`` receives ``notice``."""
    if not any(matches(s, notice.topic) for s in subscriptions):
        return False
    topic: Topic = parse_topic(notice.topic)
    return visible(viewer, topic, notice.owner)
