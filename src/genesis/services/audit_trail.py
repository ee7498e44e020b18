"""Audit-trail use cases shared by the API and the CLI: query, read, verify, stream exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from genesis.audit import AuditEvent, AuditStore, VerifyReport, load_public_key, verify_store
from genesis.audit.checkpoints import export_public_key, key_id
from genesis.audit.events import EVENT_COLUMNS
from genesis.audit.export import export_lines
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


def verify(store: AuditStore, *, hmac_key: str | None, public_keys: list[Any]) -> VerifyReport:
    """Verify the stored chain and its signed checkpoints."""
    return verify_store(store, hmac_key=hmac_key, public_key=public_keys)


def stream_ndjson(store: AuditStore, *, public_keys: list[Any]) -> Iterator[bytes]:
    """The whole stored chain in the offline-verifiable export format, one line at a time."""
    boundary = store.boundary()
    head = store.head()
    local = public_keys[0] if public_keys else None
    yield from export_lines(
        store.iter_rows(start_seq=boundary.seq + 1, end_seq=head.seq), start_seq=boundary.seq + 1,
        start_prev_hash=boundary.hash, hash_algorithm=store.hash_algorithm,
        checkpoints=store.checkpoints(min_seq=boundary.seq, max_seq=head.seq),
        key_id=key_id(local) if local is not None else None,
    )


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

