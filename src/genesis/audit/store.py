"""What the audit core needs from storage: the ``AuditStore`` protocol and its values.

``genesis.storage.audit_sql`` implements it for SQLite and PostgreSQL; only the
API/CLI wiring chooses an implementation (``open_audit_store``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from genesis.audit.chain import PendingLink
from genesis.audit.checkpoints import Checkpoint, CheckpointSigner
from genesis.audit.events import AuditEvent, EventRow

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last committed link: ``seq`` 0 and the genesis hash for an empty chain."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """One row of ``audit_archives``: the exported and pruned range."""

    before_us: int
    first_seq: int
    last_seq: int
    last_hash: str
    digest: str
    location: str
    created_at_us: int


class AuditStore(Protocol):
    """Append-only storage of one hash chain, safe for concurrent writers in several processes."""

    hash_algorithm: str

    def append(self, events: Sequence[AuditEvent | PendingLink]) -> list[AuditEvent]:
        """Commit ``events`` as the next links of the chain in one durable transaction.

        An event whose ``event_id`` is already stored is not written again; the
        stored event is returned in its place.
        """
        ...

    def head(self) -> ChainHead: ...

    def boundary(self) -> ChainHead:
        """The link the oldest stored event follows: genesis, or the last archived one."""
        ...

    def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    def checkpoints(self, *, min_seq: int | None = None, max_seq: int | None = None) -> list[Checkpoint]: ...

    def iter_rows(
        self, *, start_seq: int | None = None, end_seq: int | None = None, chunk: int = 5000
    ) -> Iterator[EventRow]:
        """Stored rows ascending by seq, fetched in chunks (constant memory)."""
        ...

    def iter_events(self, *, start_seq: int | None = None, end_seq: int | None = None) -> Iterator[AuditEvent]: ...

    def query(
        self,
        *,
        start_us: int | None = None,
        end_us: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        level: str | None = None,
        correlation_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        order: Order = "asc",
    ) -> tuple[list[AuditEvent], str | None]:
        """One page of matching events, by seq, and the cursor of the next page (None at the end).

        Times are UTC microseconds, ``end_us`` exclusive; ``cursor`` is opaque (the
        last seq of the previous page).
        """
        ...

    def get(self, event_id: str) -> AuditEvent | None: ...

    def archive(
        self, before_us: int, export_path: Path, *, signer: CheckpointSigner | None = None
    ) -> ArchiveRecord | None:
        """Export the chain prefix that occurred before ``before_us`` and prune it.

        Returns None when nothing is old enough.
        """
        ...

    def archives(self) -> list[ArchiveRecord]: ...

    def close(self) -> None: ...
