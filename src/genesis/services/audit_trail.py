"""Audit-trail use cases shared by the API and the CLI: query, read, verify, stream exports, heads and proofs."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from genesis.audit import AuditEvent, AuditStore, HeadMaker, StoredHead, VerifyReport, load_public_key, verify_store
from genesis.audit.checkpoints import export_public_key, load_or_create_signing_key
from genesis.audit.events import EVENT_COLUMNS, Col, canonical_bytes
from genesis.audit.heads import log_signer
from genesis.audit.merkle import ProofError, consistency_proof, inclusion_proof, leaf_hash
from genesis.audit.note import NoteError, NoteVerifier, parse_vkey
from genesis.audit.trail import TrustedKeys, stream_export
from genesis.errors import InvalidInput, NotFound
from genesis.safetext import spreadsheet_cell
from genesis.timeutil import rfc3339

Order = Literal["asc", "desc"]
MAX_SEQ = 2**63


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[dict[str, Any]]
    next_cursor: str | None


def event_view(event: AuditEvent) -> dict[str, Any]:
    """An event for people and clients: stored fields plus an RFC 3339 timestamp."""
    view = event.to_dict()
    view["timestamp"] = rfc3339(event.occurred_at_us)
    return view


def query_events(
    store: AuditStore, *, start_us: int | None, end_us: int | None, actor: str | None, action: str | None,
    outcome: str | None, level: str | None, correlation_id: str | None, cursor: str | None, limit: int,
    order: Order,
) -> EventPage:
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise InvalidInput("end must be later than start")
    if cursor is not None and not (cursor.isascii() and cursor.isdigit() and int(cursor) < MAX_SEQ):
        # A sequence number is a signed 64-bit integer: anything else is not a cursor this server gave out.
        raise InvalidInput("cursor must be the next_cursor of a previous page")
    events, next_cursor = store.query(
        start_us=start_us, end_us=end_us, actor=actor, action=action, outcome=outcome, level=level,
        correlation_id=correlation_id, cursor=cursor, limit=limit, order=order,
    )
    return EventPage([event_view(e) for e in events], next_cursor)


def get_event(store: AuditStore, event_id: str) -> dict[str, Any]:
    event = store.get(event_id)
    if event is None:
        raise NotFound("no such audit event")
    return event_view(event)


def trusted_public_keys(data_dir: Path, extra_pem_files: list[Path] | None = None) -> list[Any]:
    """This installation's checkpoint key plus any configured keys of other hosts."""
    keys = [load_public_key(export_public_key(data_dir))]
    for path in extra_pem_files or []:
        keys.append(load_public_key(path.read_bytes()))
    return keys


def log_verifier(data_dir: Path, origin: str | None) -> NoteVerifier:
    """The log key of this installation (its signing key's public half, under its origin)."""
    return log_signer(load_or_create_signing_key(data_dir), origin).verifier


def trusted_keys(
    data_dir: Path, origin: str | None, extra_pem_files: list[Path] | None = None, vkey: str | None = None
) -> TrustedKeys:
    """What a verification trusts: ``vkey`` (given out of band) or this installation's key, and the chain keys.

    Raises:
        InvalidInput: ``vkey`` is not a valid Ed25519 vkey.
    """
    log = log_verifier(data_dir, origin)
    if vkey is not None:
        try:
            log = parse_vkey(vkey)
        except NoteError as exc:
            raise InvalidInput(f"the log key is not a valid vkey: {exc}") from None
    return TrustedKeys(log, trusted_public_keys(data_dir, extra_pem_files))


def verify(
    store: AuditStore, *, hmac_key: str | None, keys: TrustedKeys, heads: Iterable[str] = (),
    start_seq: int | None = None, end_seq: int | None = None,
) -> VerifyReport:
    """Verify the stored trail (or a range) against its signed heads and checkpoints, and ``heads`` kept elsewhere."""
    return verify_store(store, keys=keys, hmac_key=hmac_key, heads=heads, start_seq=start_seq, end_seq=end_seq)


def stream_ndjson(store: AuditStore, *, heads: HeadMaker, proofs: bool = False) -> Iterator[bytes]:
    """The whole stored trail in the offline-verifiable export format, ending with a head made now."""
    yield from stream_export(store, heads=heads, proofs=proofs)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def head_view(head: StoredHead, origin: str) -> dict[str, Any]:
    """A signed tree head for clients: its fields and the note itself (what they verify)."""
    return {"origin": origin, "tree_size": head.size, "sha256_root_hash": _b64(head.root), "note": head.note,
            "timestamp": rfc3339(head.created_at_us), "reason": head.reason}  # fmt: skip


def latest_head(store: AuditStore) -> StoredHead:
    """The signed tree head of the largest size.

    Raises:
        NotFound: no head was signed yet.
    """
    head = store.latest_head()
    if head is None:
        raise NotFound("no signed tree head yet")
    return head


def list_heads(store: AuditStore, *, min_size: int, limit: int) -> list[StoredHead]:
    """Signed tree heads from ``min_size`` on, by size."""
    return store.heads(min_size=min_size, limit=limit)


def make_head(heads: HeadMaker) -> StoredHead:
    """A signed tree head covering every event now (the stored one when there is one)."""
    head = heads.make("on-demand")
    assert head is not None  # "on-demand" always returns a head
    return head


def _check_tree_size(store: AuditStore, tree_size: int) -> None:
    size, _ = store.tree_root()
    if tree_size > size:
        raise InvalidInput(f"the tree has {size} leaves, not {tree_size}", details={"tree_size": size})


def inclusion(
    store: AuditStore, *, tree_size: int, seq: int | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """The inclusion proof of one event (by seq or id) in the tree of ``tree_size`` events.

    Raises:
        InvalidInput: neither or both of seq and event_id, or a size or seq outside the tree.
        NotFound: no stored event with that id.
    """
    if (seq is None) == (event_id is None):
        raise InvalidInput("give either seq or event_id")
    event: AuditEvent | None = None
    if event_id is not None:
        event = store.get(event_id)
        if event is None:
            raise NotFound(f"no audit event {event_id!r}")
        seq = event.seq
    assert seq is not None
    _check_tree_size(store, tree_size)
    if not 1 <= seq <= tree_size:
        raise InvalidInput(f"event {seq} is not in a tree of size {tree_size}")
    row = next(iter(store.iter_rows(start_seq=seq, end_seq=seq)), None)  # None: archived (the leaf stays)
    try:
        proof = inclusion_proof(store, seq - 1, tree_size)
    except (ProofError, LookupError) as exc:
        raise InvalidInput(str(exc)) from None
    return {
        "leaf_index": seq - 1, "tree_size": tree_size, "seq": seq,
        "leaf_input": _b64(canonical_bytes(row)) if row is not None else None,
        "leaf_hash": _b64(leaf_hash(canonical_bytes(row))) if row is not None else None,
        "audit_path": [_b64(h) for h in proof],
        "event": event_view(AuditEvent.from_row(row)) if row is not None else None,
        "hash": row[Col.HASH] if row is not None else None,
    }  # fmt: skip


def consistency(store: AuditStore, *, first: int, second: int) -> dict[str, Any]:
    """The consistency proof from the tree of ``first`` events to that of ``second`` (RFC 9162 2.1.4).

    Raises:
        InvalidInput: ``first > second`` or a size beyond the tree.
    """
    if first > second:
        raise InvalidInput(f"first ({first}) is larger than second ({second})")
    _check_tree_size(store, second)
    return {"first": first, "second": second,
            "consistency": [_b64(h) for h in consistency_proof(store, first, second)]}


def stream_csv(store: AuditStore, *, start_us: int | None, end_us: int | None) -> Iterator[bytes]:
    """Events as CSV (for spreadsheets), optionally within a time range; constant memory.

    Every cell is :func:`~genesis.safetext.spreadsheet_cell`: control characters escaped, formulas neutralised.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["timestamp", *EVENT_COLUMNS])
    cursor: str | None = None
    while True:
        events, cursor = store.query(start_us=start_us, end_us=end_us, cursor=cursor, limit=1000, order="asc")
        for event in events:
            row = event.to_dict()
            if not isinstance(row["metadata"], str):
                row["metadata"] = orjson.dumps(row["metadata"]).decode()
            writer.writerow([rfc3339(event.occurred_at_us), *(spreadsheet_cell(row[c]) for c in EVENT_COLUMNS)])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if cursor is None:
            return

