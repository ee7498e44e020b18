from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genesis.errors import Forbidden, InvalidInput
from genesis.push.topics import (
    FAMILIES,
    SYMBOL_PATTERN,
    authorize,
    channel_for,
    channels_for_publish,
    check_type,
    parse_topic,
    visible,
)
from genesis.security.scopes import SCOPES
from genesis.services import market
from tests.push.conftest import viewer


def test_symbol_grammar_is_the_market_services_own() -> None:
    assert SYMBOL_PATTERN.pattern == market.SYMBOL_PATTERN.pattern


@given(st.text(max_size=40))
def test_a_symbol_topic_parses_exactly_when_the_market_service_accepts_the_symbol(symbol: str) -> None:
    accepted = market.SYMBOL_PATTERN.fullmatch(symbol) is not None
    try:
        topic = parse_topic(f"anomalies.{symbol}")
    except InvalidInput:
        assert not accepted
    else:
        assert accepted and topic.symbol == symbol and topic.name == f"anomalies.{symbol}"


@pytest.mark.parametrize(("text", "family", "symbol"), [
    ("prices.BTC/USD", "prices", "BTC/USD"),
    ("prices.BRK.B", "prices", "BRK.B"),  # a dot inside the symbol belongs to the symbol
    ("anomalies.ES=F", "anomalies", "ES=F"),
    ("backtests", "backtests", None),
    ("audit", "audit", None),
    ("audit.heads", "audit.heads", None),
    ("audit.verify", "audit.verify", None),
])
def test_valid_topics_parse(text: str, family: str, symbol: str | None) -> None:
    topic = parse_topic(text)
    assert (topic.family.name, topic.symbol, topic.name) == (family, symbol, text)


@pytest.mark.parametrize(("text", "fragment"), [
    ("prices", "needs a symbol"),
    ("prices.", "invalid symbol"),
    ("prices.-X", "invalid symbol"),
    ("prices.A B", "invalid symbol"),
    ("prices.GOOG\n", "invalid symbol"),  # would break an SSE id line
    ("audit.events", "unknown topic"),
    ("backtests.GOOG", "unknown topic"),
    ("orders", "unknown topic"),
    ("", "1-64 characters"),
    ("prices." + "A" * 60, "1-64 characters"),
    (42, "must be a string"),
])
def test_invalid_topics_are_refused_with_a_clear_message(text: object, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        parse_topic(text)


def test_each_topic_needs_the_scope_of_its_rest_twin() -> None:
    expected = {"prices": "prices:read", "anomalies": "anomalies:read", "backtests": "backtests:read",
                "audit": "audit:read", "audit.heads": "audit:read", "audit.verify": "audit:read"}
    assert {name: family.scope for name, family in FAMILIES.items()} == expected
    assert all(scope in SCOPES for scope in expected.values())


@pytest.mark.parametrize(("role", "topic", "allowed"), [
    ("viewer", "prices.GOOG", True), ("viewer", "anomalies.GOOG", True), ("viewer", "backtests", True),
    ("viewer", "audit", False), ("trader", "audit.heads", False), ("auditor", "audit.verify", True),
    ("auditor", "prices.GOOG", False), ("admin", "audit", True),
])
def test_authorize_follows_the_roles(role: str, topic: str, allowed: bool) -> None:
    if allowed:
        authorize(viewer(role), parse_topic(topic))
    else:
        with pytest.raises(Forbidden, match="needs the scope"):
            authorize(viewer(role), parse_topic(topic))


def test_backtests_are_private_to_their_owner_and_visible_to_admins() -> None:
    topic = parse_topic("backtests")
    alice, bob, admin = viewer("trader", "alice"), viewer("trader", "bob"), viewer("admin", "root")
    assert visible(alice, topic, "user:alice")
    assert not visible(bob, topic, "user:alice")
    assert visible(admin, topic, "user:alice")
    assert not visible(alice, topic, None)  # a private message without owner is nobody's
    assert channel_for(alice, topic) == "backtests~user:alice"
    assert channel_for(admin, topic) == "backtests"
    assert channels_for_publish(topic, "user:alice") == ("backtests", "backtests~user:alice")
    with pytest.raises(InvalidInput, match="owner"):
        channels_for_publish(topic, None)
    with pytest.raises(InvalidInput, match="public"):
        channels_for_publish(parse_topic("audit"), "user:alice")


def test_a_message_type_must_belong_to_its_topic() -> None:
    check_type(parse_topic("anomalies.GOOG"), "anomaly")
    with pytest.raises(InvalidInput, match="carries"):
        check_type(parse_topic("anomalies.GOOG"), "price")
