"""Push delivery core: topics, envelopes, the in-process fan-out hub, Standard Webhooks signing.

No web framework, database driver or Genesis service here (an import-linter contract
enforces it): the Redis broker lives in ``genesis.storage.push_redis``, the HTTP webhook
sender in ``genesis.services.webhook_sender``, the routes in ``genesis.api``. See docs/push.md.
"""

from __future__ import annotations

from genesis.push.connection import CloseReason, Connection, ConnectionClosed
from genesis.push.envelope import Gap, GapReason, Item, Message, Token, format_cursor, parse_cursor, parse_token
from genesis.push.hub import Broker, Feed, Hub, Snapshot
from genesis.push.limits import PushLimits, RateBucket
from genesis.push.topics import FAMILIES, Topic, Viewer, authorize, parse_topic, visible

__all__ = [
    "FAMILIES",
    "Broker",
    "CloseReason",
    "Connection",
    "ConnectionClosed",
    "Feed",
    "Gap",
    "GapReason",
    "Hub",
    "Item",
    "Message",
    "PushLimits",
    "RateBucket",
    "Snapshot",
    "Token",
    "Topic",
    "Viewer",
    "authorize",
    "format_cursor",
    "parse_cursor",
    "parse_token",
    "parse_topic",
    "visible",
]
