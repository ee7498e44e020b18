from __future__ import annotations

import orjson
import pytest

from genesis.errors import InvalidInput
from genesis.push.envelope import Gap, GapReason, Token, format_cursor, make_message, parse_cursor, parse_token


def test_a_message_envelope_embeds_the_data_once_serialised() -> None:
    message = make_message(topic="prices.GOOG", epoch="e1", seq=7, type="price", time="2026-01-02T00:00:00.000000Z",
                           data_json=b'{"price":1.5}', owner=None)
    assert orjson.loads(message.payload) == {
        "topic": "prices.GOOG", "seq": 7, "id": "e1:7", "type": "price", "time": "2026-01-02T00:00:00.000000Z",
        "data": {"price": 1.5},
    }
    assert message.token == "e1:7"


def test_a_gap_notice_has_the_envelope_shape_and_resumes_after_the_gap() -> None:
    gap = Gap("audit", "e1", 3, 9, GapReason.LAGGED, "2026-01-02T00:00:00.000000Z")
    assert orjson.loads(gap.payload) == {
        "topic": "audit", "seq": 9, "id": "e1:9", "type": "gap", "time": "2026-01-02T00:00:00.000000Z",
        "data": {"from_seq": 3, "to_seq": 9, "reason": "lagged", "epoch": "e1"},
    }


@pytest.mark.parametrize("text", ["abc:0", "k7Qm2x-_:12", "e:999999999999999999"])
def test_tokens_round_trip(text: str) -> None:
    assert str(parse_token(text)) == text


@pytest.mark.parametrize("text", ["", "abc", ":1", "abc:", "abc:-1", "abc:01", "a b:1", "abc:1:2", "e:" + "9" * 19,
                                  "x" * 33 + ":1", None, 5])
def test_malformed_tokens_are_refused(text: object) -> None:
    with pytest.raises(InvalidInput, match="epoch>:<seq>"):
        parse_token(text)


def test_a_cursor_carries_every_topic_position_and_round_trips() -> None:
    cursor = format_cursor({"prices.BTC/USD": "e1:4", "audit": "e2:10", "prices.A=B:C": "e1:0"})
    assert cursor == "audit@e2:10,prices.A=B:C@e1:0,prices.BTC/USD@e1:4"
    assert parse_cursor(cursor, max_topics=3) == {
        "audit": Token("e2", 10), "prices.A=B:C": Token("e1", 0), "prices.BTC/USD": Token("e1", 4)}
    assert parse_cursor("", max_topics=3) == {}


@pytest.mark.parametrize(("text", "fragment"), [
    ("e1:4", "looks like"), ("audit@e1:4,audit@e1:5", "twice"), ("a@e:1,b@e:1,c@e:1", "at most 2"),
    ("audit@nope", "epoch>:<seq>"),
])
def test_malformed_cursors_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        parse_cursor(text, max_topics=2)
