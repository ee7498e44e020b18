"""What travels: the message envelope, gap notices, resumption tokens and SSE cursors.

Every item a subscriber receives is one JSON object of the same shape::

    {"topic": "prices.BTC/USD", "seq": 12, "id": "k7Qm2x:12", "type": "price",
     "time": "2026-01-02T00:00:00.000000Z", "data": {...}}

``seq`` numbers the messages of a topic 1, 2, 3, ... within an *epoch*; ``id`` is the
resumption token ``<epoch>:<seq>``. A new epoch starts when the numbering cannot be
trusted to continue (an in-process hub restarted, Redis lost its data): a token from
another epoch then gets a gap notice instead of messages that merely share numbers.

A gap notice has ``type: "gap"`` and ``data: {from_seq, to_seq, reason, epoch}``: the
messages ``from_seq..to_seq`` (inclusive) of that epoch will not be delivered; its
``seq``/``id`` are those of ``to_seq``, so resuming from it continues after the gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Final

import orjson

from genesis.errors import InvalidInput

EPOCH_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_TOKEN_PATTERN: Final = re.compile(r"^([A-Za-z0-9_-]{1,32}):(0|[1-9][0-9]{0,17})$")
CURSOR_SEPARATOR: Final = ","
CURSOR_TOPIC_MARK: Final = "@"  # not in the topic grammar


@dataclass(frozen=True, slots=True)
class Token:
    """A resumption token: the last sequence number seen in an epoch."""

    epoch: str
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.seq}"


def parse_token(text: object) -> Token:
    """The token written as ``<epoch>:<seq>``.

    Raises:
        InvalidInput: anything else (the message shows the expected form).
    """
    match = _TOKEN_PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput("a resumption token looks like '<epoch>:<seq>' (the 'id' of the last message received)")
    return Token(match.group(1), int(match.group(2)))


class GapReason(StrEnum):
    """Why messages will not be delivered."""

    LAGGED = "lagged"  # the subscriber did not keep up and its queue was full
    EXPIRED = "expired"  # the messages are no longer retained (older than the replay window)
    EPOCH = "epoch"  # the token belongs to another epoch: what followed it there is unknown


@dataclass(frozen=True, slots=True)
class Message:
    """One published message, its envelope serialised once for every subscriber."""

    topic: str
    epoch: str
    seq: int
    type: str
    time: str
    owner: str | None
    payload: bytes

    event: ClassVar[str] = "message"

    @property
    def token(self) -> str:
        return f"{self.epoch}:{self.seq}"


def make_message(
    *, topic: str, epoch: str, seq: int, type: str, time: str, data_json: bytes, owner: str | None,
) -> Message:
    """A message whose envelope embeds ``data_json`` as it is (already serialised JSON)."""
    payload = orjson.dumps({
        "topic": topic, "seq": seq, "id": f"{epoch}:{seq}", "type": type, "time": time,
        "data": orjson.Fragment(data_json),
    })
    return Message(topic, epoch, seq, type, time, owner, payload)


@dataclass(frozen=True, slots=True)
class Gap:
    """A gap notice: messages ``from_seq..to_seq`` of ``epoch`` on ``topic`` will not come."""

    topic: str
    epoch: str
    from_seq: int
    to_seq: int
    reason: GapReason
    time: str

    event: ClassVar[str] = "gap"
    type: ClassVar[str] = "gap"

    @property
    def seq(self) -> int:
        return self.to_seq

    @property
    def token(self) -> str:
        return f"{self.epoch}:{self.to_seq}"

    @property
    def payload(self) -> bytes:
        return orjson.dumps({
            "topic": self.topic, "seq": self.to_seq, "id": self.token, "type": "gap", "time": self.time,
            "data": {"from_seq": self.from_seq, "to_seq": self.to_seq, "reason": str(self.reason),
                     "epoch": self.epoch},
        })


Item = Message | Gap


def format_cursor(positions: dict[str, str]) -> str:
    """One SSE ``id`` for several topics: ``topic@epoch:seq,topic@epoch:seq`` (sorted by topic).

    SSE sends back a single ``Last-Event-ID``, so the id of each event carries the position of
    every topic of the stream, not only of the topic of that event.
    """
    return CURSOR_SEPARATOR.join(f"{topic}{CURSOR_TOPIC_MARK}{token}" for topic, token in sorted(positions.items()))


def parse_cursor(text: str, *, max_topics: int) -> dict[str, Token]:
    """The positions in a cursor made by :func:`format_cursor` (e.g. a ``Last-Event-ID``).

    A single bare token is not a cursor: which topic it belongs to is unknown.

    Raises:
        InvalidInput: malformed, a topic repeated, or more than ``max_topics`` entries.
    """
    if not text:
        return {}
    entries = text.split(CURSOR_SEPARATOR)
    if len(entries) > max_topics:
        raise InvalidInput(f"the cursor names {len(entries)} topics; at most {max_topics}")
    out: dict[str, Token] = {}
    for entry in entries:
        topic, mark, token = entry.rpartition(CURSOR_TOPIC_MARK)
        if not mark or not topic:
            raise InvalidInput("a cursor looks like 'topic@epoch:seq,topic@epoch:seq' (the id of the last event)")
        if topic in out:
            raise InvalidInput(f"the cursor names topic {topic!r} twice")
        out[topic] = parse_token(token)
    return out
