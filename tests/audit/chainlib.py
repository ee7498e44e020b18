"""Helpers shared by the audit tests: deterministic events and chains, and tampering."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from genesis.audit.chain import ChainHasher, seal
from genesis.audit.events import GENESIS_HASH, AuditEvent, EventRow, canonical_bytes, new_event


def make_event(i: int, *, base_us: int = 1_700_000_000_000_000, **overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "actor": f"user{i % 7}",
        "message": f"event {i}",
        "metadata": {"i": i, "tags": ["a", "b"]},
        "correlation_id": f"c-{i // 10}",
        "occurred_at_us": base_us + i * 1_000_000,
        "source_ip": "192.0.2.1",
        "method": "POST",
        "path": f"/things/{i}",
        "status": 200,
    }
    fields.update(overrides)
    return new_event(str(fields.pop("action", "test.event")), **fields)  # type: ignore[arg-type]


def build_chain(n: int, hmac_key: str | None = None) -> list[EventRow]:
    return seal([make_event(i) for i in range(n)], 0, GENESIS_HASH, ChainHasher(hmac_key))


def iter_chain(n: int) -> Iterator[EventRow]:
    """A chain generated lazily (for constant-memory checks)."""
    hasher = ChainHasher()
    seq, prev = 0, GENESIS_HASH
    for i in range(n):
        (row,) = seal([make_event(i)], seq, prev, hasher)
        seq, prev = row[0], row[17]
        yield row


def with_field(row: EventRow, index: int, value: object) -> EventRow:
    return (*row[:index], value, *row[index + 1 :])


def rehash(row: EventRow) -> EventRow:
    """The row with its hash recomputed (SHA-256) - what a forger without a key can do."""
    link = hashlib.sha256(bytes.fromhex(row[16]) + canonical_bytes(row)).hexdigest()
    return (*row[:17], link)


def rechain(rows: list[EventRow], start: int) -> list[EventRow]:
    """Recompute seq/prev_hash/hash from ``start`` on, as a forger rewriting history would."""
    out = list(rows[:start])
    prev = out[-1][17] if out else GENESIS_HASH
    for i, row in enumerate(rows[start:], start=start):
        fixed = rehash((i + 1, *row[1:16], prev, ""))
        out.append(fixed)
        prev = fixed[17]
    return out
