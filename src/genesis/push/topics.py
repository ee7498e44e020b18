"""Topic grammar: what a client may subscribe to, the scope each topic needs, who sees which message.

Topics are ``prices.<symbol>``, ``anomalies.<symbol>``, ``backtests``, ``audit``,
``audit.heads`` and ``audit.verify``. A symbol follows the grammar of
``services/market.py`` (``SYMBOL_PATTERN``, case preserved, so ``prices.btc/usd`` and
``prices.BTC/USD`` are different topics, as the stored symbols are).

A topic is what clients name; a *channel* is what the hub and the broker number. They
are the same string except for ``backtests``, whose messages are private to their
owner: each is published on the owner's channel (``backtests~<subject>``) and on the
all-runs channel read by admins. A user's sequence numbers therefore count their own
runs only: contiguous, so loss is visible, and nothing about other users' activity
leaks through the numbering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Protocol

from genesis.errors import Forbidden, InvalidInput

# Kept equal to genesis.services.market.SYMBOL_PATTERN (the core may not import services);
# tests/push/test_topics.py checks that the two agree.
SYMBOL_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:^=-]*(?:/[A-Za-z0-9][A-Za-z0-9._:^=-]*)*$")
SYMBOL_RULE: Final = (
    "segments separated by /, each starting with a letter or digit and going on with letters, digits and "
    ". _ : ^ = -, e.g. BTC/USD"
)
MAX_TOPIC_LENGTH: Final = 64
OWNER_SEPARATOR: Final = "~"


@dataclass(frozen=True, slots=True)
class Family:
    """A kind of topic: its scope, whether it takes a symbol, the message types it carries."""

    name: str
    scope: str
    per_symbol: bool
    types: frozenset[str]
    private: bool = False  # messages belong to an owner (seen by the owner and admins only)


FAMILIES: Final[dict[str, Family]] = {
    family.name: family
    for family in (
        Family("prices", "prices:read", True, frozenset({"price"})),
        Family("anomalies", "anomalies:read", True, frozenset({"anomaly"})),
        Family("backtests", "backtests:read", False, frozenset({"backtest.completed"}), private=True),
        Family("audit", "audit:read", False, frozenset({"audit.event"})),
        Family("audit.heads", "audit:read", False, frozenset({"audit.head"})),
        Family("audit.verify", "audit:read", False, frozenset({"audit.verify_failed"})),
    )
}


class Viewer(Protocol):
    """Who subscribes: ``genesis.services.auth.Principal`` satisfies this."""

    @property
    def subject(self) -> str: ...

    @property
    def scopes(self) -> frozenset[str]: ...


def is_admin(viewer: Viewer) -> bool:
    """True when the viewer holds the ``admin`` scope (as ``Principal.is_admin``)."""
    return "admin" in viewer.scopes


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed, valid topic."""

    family: Family
    symbol: str | None = None

    @property
    def name(self) -> str:
        return self.family.name if self.symbol is None else f"{self.family.name}.{self.symbol}"

    @property
    def scope(self) -> str:
        """The scope a subscriber needs (the scope of the topic's REST twin)."""
        return self.family.scope

    def __str__(self) -> str:
        return self.name


def parse_topic(text: object) -> Topic:
    """The topic named by ``text``.

    Raises:
        InvalidInput: not a string, too long, an unknown family or an invalid symbol.
    """
    if not isinstance(text, str):
        raise InvalidInput("a topic must be a string such as 'prices.BTC/USD' or 'audit'")
    if not text or len(text) > MAX_TOPIC_LENGTH:
        raise InvalidInput(f"a topic has 1-{MAX_TOPIC_LENGTH} characters")
    exact = FAMILIES.get(text)
    if exact is not None:
        if exact.per_symbol:
            raise InvalidInput(f"topic {text!r} needs a symbol: '{text}.<symbol>', e.g. '{text}.BTC/USD'")
        return Topic(exact)
    prefix, dot, symbol = text.partition(".")
    family = FAMILIES.get(prefix)
    if family is None or not dot:
        raise InvalidInput(f"unknown topic {text!r}; topics: {', '.join(topic_names())}")
    if not family.per_symbol:
        raise InvalidInput(f"unknown topic {text!r}; topics: {', '.join(topic_names())}")
    if not SYMBOL_PATTERN.fullmatch(symbol):  # match() would let a trailing newline through
        raise InvalidInput(f"invalid symbol {symbol!r} in topic {text!r}: {SYMBOL_RULE}")
    return Topic(family, symbol)


def topic_names() -> list[str]:
    """Every topic pattern, for error messages and docs."""
    return [f"{f.name}.<symbol>" if f.per_symbol else f.name for f in FAMILIES.values()]


def authorize(viewer: Viewer, topic: Topic) -> None:
    """Check that ``viewer`` may subscribe to ``topic``.

    Raises:
        Forbidden: the viewer's token lacks the topic's scope.
    """
    if topic.scope not in viewer.scopes:
        raise Forbidden(f"topic {topic.name!r} needs the scope {topic.scope!r}",
                        details={"required_scope": topic.scope})


def channel_for(viewer: Viewer, topic: Topic) -> str:
    """The channel a subscription of ``viewer`` to ``topic`` reads (after :func:`authorize`)."""
    if topic.family.private and not is_admin(viewer):
        return f"{topic.name}{OWNER_SEPARATOR}{viewer.subject}"
    return topic.name


def channels_for_publish(topic: Topic, owner: str | None) -> tuple[str, ...]:
    """The channels a message on ``topic`` is appended to.

    Raises:
        InvalidInput: a private topic's message without an owner, or an owner on a public topic.
    """
    if topic.family.private:
        if not owner:
            raise InvalidInput(f"a message on {topic.name!r} needs its owner's subject")
        return (topic.name, f"{topic.name}{OWNER_SEPARATOR}{owner}")
    if owner is not None:
        raise InvalidInput(f"messages on {topic.name!r} are public: no owner")
    return (topic.name,)


def visible(viewer: Viewer, topic: Topic, owner: str | None) -> bool:
    """True when ``viewer`` may see a message on ``topic`` owned by ``owner`` (None: public).

    The single rule behind every delivery (streams and webhooks): the topic's scope,
    and for private topics ownership or the admin scope.
    """
    if topic.scope not in viewer.scopes:
        return False
    if not topic.family.private:
        return True
    return owner is not None and (owner == viewer.subject or is_admin(viewer))


def check_type(topic: Topic, message_type: str) -> None:
    """Check that ``message_type`` is one ``topic`` carries (a producer's bug otherwise).

    Raises:
        InvalidInput: the type does not belong to the topic's family.
    """
    if message_type not in topic.family.types:
        raise InvalidInput(f"topic {topic.name!r} carries {sorted(topic.family.types)}, not {message_type!r}")
