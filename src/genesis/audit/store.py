"""What the audit core needs from storage: the ``AuditStore`` protocol and its values.

``genesis.storage.audit_sql`` implements it for SQLite and PostgreSQL; only the
API/CLI wiring chooses an implementation (``open_audit_store``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from genesis.audit.chain import PendingLink
from genesis.audit.checkpoints import Checkpoint
from genesis.audit.events import AuditEvent, EventRow
from genesis.audit.merkle import NodeId, NodeReader

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


@dataclass(frozen=True, slots=True)
class StoredHead:
    """One row of ``audit_heads``: a signed tree head (C2SP checkpoint note) for ``size`` leaves."""

    size: int
    root: bytes
    note: str
    created_at_us: int
    reason: str


@dataclass(frozen=True, slots=True)
class HeadDraft:
    """What a head maker sees inside the transaction that may add a head (the chain lock is held).

    ``size`` and ``root`` are the tree's now; ``latest`` is the stored head of the largest size;
    ``nodes`` reads perfect nodes in the same transaction; ``stored(size)`` the head of a size.
    """

    size: int
    root: bytes
    latest: StoredHead | None
    nodes: NodeReader
    stored: Callable[[int], StoredHead | None]


ArchiveWriter = Callable[[Path, ChainHead, int], str]
"""Writes (and verifies) the export of an archive run: ``(path, boundary, last_seq) -> digest``."""


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

    def archive_cut(self, before_us: int) -> int | None:
        """The last seq an archive before ``before_us`` would prune (None: nothing is old enough)."""
        ...

    def archive(self, last_seq: int, before_us: int, export_path: Path, *, write: ArchiveWriter) -> ArchiveRecord:
        """Export events from the boundary to ``last_seq`` through ``write`` and prune them.

        ``write(path, start, last_seq)`` writes and verifies the export and returns its digest;
        the store then records the archive and deletes the events in one transaction, if a signed
        head of size ``last_seq`` is stored (it vouches for the boundary).

        Raises:
            Conflict: another archive ran meanwhile, or no head of size ``last_seq`` is stored.
        """
        ...

    def archives(self) -> list[ArchiveRecord]: ...

    # --- the Merkle tree and its signed heads (docs/audit-format.md sections 8-9) ---------------

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """Stored perfect subtree hashes, in the order asked (a :class:`~genesis.audit.merkle.NodeReader`).

        Raises:
            LookupError: a node is not stored (the tree is smaller than asked).
        """
        ...

    def tree_root(self, size: int | None = None) -> tuple[int, bytes]:
        """``(size, root)`` of the tree now, or of the tree of its first ``size`` leaves.

        Raises:
            LookupError: ``size`` is larger than the tree.
        """
        ...

    def add_head(self, decide: Callable[[HeadDraft], StoredHead | None]) -> StoredHead | None:
        """Under the chain lock, call ``decide`` with the tree now; store the head it returns (same transaction).

        Raises:
            Conflict: a head of that size is already stored.
        """
        ...

    def latest_head(self) -> StoredHead | None:
        """The stored head of the largest size."""
        ...

    def heads(
        self, *, min_size: int | None = None, max_size: int | None = None, limit: int = 1000, order: Order = "asc"
    ) -> list[StoredHead]:
        """Stored heads by size, within the bounds (inclusive)."""
        ...

    def close(self) -> None: ...
