"""Audit events: the record, its identifier and its canonical byte encoding.

The encoding is specified in ``docs/audit-format.md``; the functions here are the
reference implementation of that text. No I/O beyond the clock and ``os.urandom``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from genesis.audit.redaction import NO_LIMIT, clean_text, get_redactor, json_safe
from genesis.timeutil import now_us

OUTCOMES: Final = ("success", "failure", "denied", "started", "error")
"""``started``: an intent recorded before a change; ``error``: the server failed (a 500 or a crash)."""

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first event ever written (sequence number 1)."""

# Row order used by the store and by ``verify_chain``; equal to the field order of
# ``AuditEvent`` so that ``AuditEvent(*row)`` rebuilds an event from a stored row.
EVENT_COLUMNS: Final = (
    "seq", "event_id", "occurred_at_us", "level", "action", "outcome", "actor",
    "source_ip", "user_agent", "method", "path", "status", "correlation_id",
    "request_id", "message", "metadata", "prev_hash", "hash",
)  # fmt: skip

# Column widths of ``audit_events``; longer values are cut before hashing so that
# what is hashed is exactly what the database keeps (PostgreSQL enforces them).
FIELD_LIMITS: Final = {
    "event_id": 36, "level": 16, "action": 128, "outcome": 16, "actor": 128,
    "source_ip": 64, "user_agent": 512, "method": 16, "path": 2048,
    "correlation_id": 128, "request_id": 128,
}  # fmt: skip

EventRow = tuple[Any, ...]
"""One stored event as a tuple in ``EVENT_COLUMNS`` order (metadata as JSON text); index it with :class:`Col`."""


class Col:
    """Positions of the columns in an :data:`EventRow` (``row[Col.PREV_HASH]``), in ``EVENT_COLUMNS`` order."""

    SEQ, EVENT_ID, OCCURRED_AT_US, LEVEL, ACTION, OUTCOME, ACTOR, SOURCE_IP, USER_AGENT, METHOD, PATH, STATUS, \
        CORRELATION_ID, REQUEST_ID, MESSAGE, METADATA, PREV_HASH, HASH = range(18)


assert EVENT_COLUMNS.index("prev_hash") == Col.PREV_HASH and EVENT_COLUMNS.index("hash") == Col.HASH


class _Entropy(threading.local):
    """Per-thread buffer of ``os.urandom`` bytes: one syscall per 512 identifiers."""

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0


_entropy = _Entropy()


def _reset_entropy() -> None:  # a forked child must not reuse its parent's bytes
    global _entropy
    _entropy = _Entropy()


os.register_at_fork(after_in_child=_reset_entropy)


def _random62() -> int:
    ent = _entropy
    pos = ent.pos
    if pos >= len(ent.buf):
        ent.buf, pos = os.urandom(4096), 0
    ent.pos = pos + 8
    return int.from_bytes(ent.buf[pos : pos + 8]) >> 2


def uuid7(unix_ns: int | None = None) -> str:
    """A time-ordered RFC 9562 UUID version 7 string.

    The 12 ``rand_a`` bits carry the sub-millisecond fraction (RFC 9562 6.2,
    method 3), so identifiers made in one process sort by creation time; the 62
    ``rand_b`` bits come from ``os.urandom``.
    """
    ns = time.time_ns() if unix_ns is None else unix_ns
    ms, rest = divmod(ns, 1_000_000)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | (0x7000 | (rest << 12) // 1_000_000) << 64 | 1 << 63 | _random62()
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit record. ``seq``, ``prev_hash`` and ``hash`` are set when committed.

    Build events with :func:`new_event`, which redacts and cleans the fields;
    stored rows come back through :meth:`from_row`.
    """

    seq: int = 0
    event_id: str = field(default_factory=uuid7)
    occurred_at_us: int = field(default_factory=now_us)
    level: str = "AUDIT"
    action: str = ""
    outcome: str = "success"
    actor: str = "system"
    source_ip: str | None = None
    user_agent: str | None = None
    method: str | None = None
    path: str | None = None
    status: int | None = None
    correlation_id: str = ""
    request_id: str | None = None
    message: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (metadata as an object)."""
        return {name: getattr(self, name) for name in EVENT_COLUMNS}

    @classmethod
    def from_row(cls, row: EventRow, metadata: Mapping[str, Any] | None = None) -> AuditEvent:
        """Rebuild an event from a stored row (metadata parsed from its JSON text unless given)."""
        values = list(row)
        text = values[Col.METADATA]
        values[Col.METADATA] = metadata if metadata is not None else orjson.loads(text) if text else {}
        return build_event(values)


# Slot setters: ``build_event`` fills a new instance the way the generated frozen
# ``__init__`` does, without its per-field call overhead (this runs twice per event).
(_s0, _s1, _s2, _s3, _s4, _s5, _s6, _s7, _s8, _s9, _s10, _s11, _s12, _s13, _s14, _s15, _s16, _s17) = (
    getattr(AuditEvent, name).__set__ for name in EVENT_COLUMNS
)
_new = object.__new__


def build_event(values: Sequence[Any]) -> AuditEvent:
    """An ``AuditEvent`` from 18 values in ``EVENT_COLUMNS`` order (metadata as a mapping).

    Raises:
        ValueError: not exactly 18 values.
    """
    # Unrolled: about 40% cheaper than a loop over zip(setters, values).
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, v17 = values
    event = _new(AuditEvent)
    _s0(event, v0)
    _s1(event, v1)
    _s2(event, v2)
    _s3(event, v3)
    _s4(event, v4)
    _s5(event, v5)
    _s6(event, v6)
    _s7(event, v7)
    _s8(event, v8)
    _s9(event, v9)
    _s10(event, v10)
    _s11(event, v11)
    _s12(event, v12)
    _s13(event, v13)
    _s14(event, v14)
    _s15(event, v15)
    _s16(event, v16)
    _s17(event, v17)
    return event


def new_event(
    action: str,
    *,
    actor: str = "system",
    outcome: str = "success",
    level: str = "AUDIT",
    message: str = "",
    metadata: Mapping[str, Any] | None = None,
    correlation_id: str = "",
    request_id: str | None = None,
    source_ip: str | None = None,
    user_agent: str | None = None,
    method: str | None = None,
    path: str | None = None,
    status: int | None = None,
    occurred_at_us: int | None = None,
    redact: bool = True,
) -> AuditEvent:
    """Build an uncommitted event: redacted, JSON-safe and cut to the column widths.

    Args:
        action: dotted event type, e.g. ``"auth.login.failed"``.
        correlation_id: defaults to a new id (callers normally pass the bound one).
        redact: apply the process redactor (the one the log pipeline uses) to ``metadata``, ``message`` and
            every other text field.
    """
    ns = time.time_ns()
    if redact:
        redactor = get_redactor()
        meta = redactor.clean(metadata) if metadata else {}
        message = redactor.scrub(message) if message else message
        # Every free-text field goes through the log's redaction before it is hashed: a token placed in a
        # path, a user agent or a username would otherwise be kept for good. One scan of all of them first
        # (most events hold nothing to redact), then field by field only when it finds something.
        texts = (action, actor, source_ip, user_agent, method, path, correlation_id, request_id)
        if redactor.may_hold_secrets("\n".join(t for t in texts if t)):
            scrub = redactor.scrub
            action, actor, correlation_id = scrub(action), scrub(actor), scrub(correlation_id)
            source_ip = None if source_ip is None else scrub(source_ip)
            user_agent = None if user_agent is None else scrub(user_agent)
            method = None if method is None else scrub(method)
            path = None if path is None else scrub(path)
            request_id = None if request_id is None else scrub(request_id)
    else:
        meta = json_safe(metadata) if metadata else {}
    if not isinstance(meta, dict):  # metadata is always a JSON object
        meta = {"value": meta}
    return build_event((
        0, uuid7(ns), ns // 1000 if occurred_at_us is None else int(occurred_at_us),
        clean_text(level.upper(), 16) or "AUDIT", clean_text(action, 128) or "unspecified",
        clean_text(outcome, 16), clean_text(actor, 128) or "system",
        None if source_ip is None else clean_text(source_ip, 64),
        None if user_agent is None else clean_text(user_agent, 512),
        None if method is None else clean_text(method, 16),
        None if path is None else clean_text(path, 2048),
        None if status is None else int(status),
        clean_text(correlation_id or uuid7(ns), 128),
        None if request_id is None else clean_text(request_id, 128),
        clean_text(message, NO_LIMIT), meta, "", "",
    ))  # fmt: skip


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """The stored text of ``metadata``: orjson with sorted keys, no whitespace."""
    try:
        return orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(json_safe(metadata), option=orjson.OPT_SORT_KEYS).decode()


def canonical_bytes(row: Sequence[Any]) -> bytes:
    """Canonical encoding of a stored row: every column except ``hash``.

    A JSON object whose keys appear in code-point order, without whitespace,
    UTF-8, with ``metadata`` embedded as a JSON *string* holding the stored text.
    """
    return _dumps(
        {
            "action": row[4], "actor": row[6], "correlation_id": row[12],
            "event_id": row[1], "level": row[3], "message": row[14],
            "metadata": row[15], "method": row[9], "occurred_at_us": row[2],
            "outcome": row[5], "path": row[10], "prev_hash": row[16],
            "request_id": row[13], "seq": row[0], "source_ip": row[7],
            "status": row[11], "user_agent": row[8],
        }
    )  # fmt: skip  # literal positions (Col.X in this hot path costs an attribute lookup per field)


_dumps: Final = orjson.dumps
