"""Operations on a stored trail: verify it, export a range, archive old events.

These are the use cases the API and CLI call (``genesis audit verify|export|archive``);
each takes its store and keys explicitly. Verification holds the events against the signed tree
heads (``audit_heads``, and any kept elsewhere, e.g. a head log) and, for trails older than their
tree, the chain checkpoints (``audit_checkpoints``), with :func:`genesis.audit.verifier.verify_trail`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genesis.audit.chain import VerifyReport
from genesis.audit.checkpoints import public_key_pem
from genesis.audit.events import Col, EventRow, canonical_bytes, new_event
from genesis.audit.export import (
    ExportStart,
    ExportSummary,
    ExportTally,
    ProofSource,
    export_lines,
    write_export,
)
from genesis.audit.exportfile import verify_export_file
from genesis.audit.heads import HeadMaker
from genesis.audit.merkle import Frontier, inclusion_nodes, inclusion_proof
from genesis.audit.note import NoteError, NoteVerifier, SignedCheckpoint, open_checkpoint
from genesis.audit.recorder import AuditRecorder
from genesis.audit.store import ArchiveRecord, AuditStore, ChainHead, StoredHead
from genesis.audit.verifier import Anchor, TrailReport, open_chain_checkpoints, verify_trail
from genesis.errors import Conflict, InvalidInput
from genesis.timeutil import now_us

DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """What a verification of the stored trail trusts: the log key and the chain checkpoint keys."""

    log: NoteVerifier
    chain: Sequence[Ed25519PublicKey] = ()
    """Keys of the chain checkpoints of the trail before it had a tree (the log key's own is always one)."""


def _report(trail: TrailReport, signatures: bool = True) -> VerifyReport:
    return VerifyReport(trail.ok, trail.events_checked, trail.last_seq, trail.head_hash, trail.checkpoints_matched,
                        trail.covered_size, signatures, trail.kind, trail.first_bad_seq, trail.detail, trail.root)


def _stored_heads(store: AuditStore, log: NoteVerifier, min_size: int) -> list[SignedCheckpoint] | str:
    """Every stored head from ``min_size`` on, verified; or the reason one does not verify."""
    out: list[SignedCheckpoint] = []
    size = min_size
    while True:
        page = store.heads(min_size=size, limit=1000)
        for head in page:
            try:
                opened = open_checkpoint(head.note, log)
            except NoteError as exc:
                return f"the stored head of size {head.size} does not verify: {exc}"
            if (opened.size, opened.root) != (head.size, head.root):
                return f"the stored head of size {head.size} does not match its signed text"
            out.append(opened)
        if len(page) < 1000:
            return out
        size = page[-1].size + 1


def _anchors(store: AuditStore, keys: TrustedKeys, min_seq: int) -> list[Anchor]:
    """The stored chain checkpoints from ``min_seq`` on, verified (ValueError names one that does not)."""
    cps = store.checkpoints(min_seq=min_seq)
    return open_chain_checkpoints([cp.to_dict() for cp in cps], [keys.log.public_key, *keys.chain])


def verify_store(
    store: AuditStore,
    *,
    keys: TrustedKeys | None = None,
    hmac_key: bytes | str | None = None,
    heads: Iterable[str] = (),
    start_seq: int | None = None,
    end_seq: int | None = None,
    pace: Callable[[Iterable[EventRow]], Iterable[EventRow]] | None = None,
    chunk: int = 5000,
) -> VerifyReport:
    """Verify the stored trail from its boundary (or ``start_seq``) to its head (or ``end_seq``).

    With ``keys``, the events are held against every stored signed tree head and chain checkpoint in
    the range, and against ``heads`` (signed notes kept outside the database: a head log, a
    witness's); a head or checkpoint beyond the last event means the tail was cut (unless the range
    ends at ``end_seq``). An archive boundary must be vouched for by a head of exactly its size (the
    archive makes one) or a chain checkpoint there, otherwise deleted history could pass for archived.
    Without ``keys``, only the hash chain is checked. ``pace`` wraps the rows (a background check
    pauses now and then); ``chunk`` is how many rows each read fetches.
    """
    boundary = store.boundary()
    first = max(start_seq or boundary.seq + 1, boundary.seq + 1)
    base = first - 1
    top = 2**62 if end_seq is None else end_seq
    start = _start(store, first, boundary)
    rows: Iterable[EventRow] = store.iter_rows(start_seq=first, end_seq=end_seq, chunk=chunk)
    if pace is not None:
        rows = pace(rows)
    if keys is None:
        trail = verify_trail(rows, log_key=None, start_seq=first, start_prev_hash=start.prev_hash,
                             start_frontier=start.frontier, hmac_key=hmac_key, encoder=canonical_bytes)  # fmt: skip
        return _report(trail, signatures=False)
    stored = _stored_heads(store, keys.log, base)
    if isinstance(stored, str):
        return _report(TrailReport(False, 0, base, start.prev_hash, "", 0, base, "bad_checkpoint", None, stored))
    outside: list[SignedCheckpoint] = []
    for note in heads:
        try:
            outside.append(open_checkpoint(note, keys.log))
        except NoteError as exc:
            return _report(TrailReport(False, 0, base, start.prev_hash, "", 0, base, "bad_checkpoint", None,
                                       f"a head given does not verify: {exc}"))  # fmt: skip
    try:
        anchors = [a for a in _anchors(store, keys, base) if a[0] <= top]
    except ValueError as exc:
        return _report(TrailReport(False, 0, base, start.prev_hash, "", 0, base, "bad_checkpoint", None, str(exc)))
    signed = [h for h in [*stored, *outside] if base <= h.size <= top]
    if base == boundary.seq > 0 and not (
        any(h.size == base for h in signed) or (base, start.prev_hash) in anchors
    ):
        detail = f"the archive boundary at seq {base} is vouched for by no signed head or checkpoint"
        return _report(TrailReport(False, 0, base, start.prev_hash, "", 0, base, "deleted", base, detail))
    trail = verify_trail(
        rows, log_key=keys.log, checkpoints=signed, anchors=anchors, start_seq=first,
        start_prev_hash=start.prev_hash, start_frontier=start.frontier, hmac_key=hmac_key, encoder=canonical_bytes,
    )  # fmt: skip
    return _report(trail)


def proof_source(store: AuditStore, size: int) -> ProofSource:
    """Inclusion proofs in the tree of ``size`` leaves, the nodes of a batch of leaves read in one query."""

    def proofs(indices: Sequence[int]) -> list[list[bytes]]:
        ids = sorted({node for index in indices for node in inclusion_nodes(index, size)})
        cache = dict(zip(ids, store.read_nodes(ids), strict=True))

        class _Cached:
            @staticmethod
            def read_nodes(wanted: Sequence[tuple[int, int]]) -> list[bytes]:
                return [cache[node] for node in wanted]

        return [inclusion_proof(_Cached, index, size) for index in indices]

    return proofs


def _start(store: AuditStore, first: int, boundary: ChainHead) -> ExportStart:
    if first - 1 == boundary.seq:
        prev = boundary.hash
    else:
        before = next(iter(store.iter_rows(start_seq=first - 1, end_seq=first - 1)), None)
        if before is None:
            raise Conflict(f"the event before seq {first} is missing")
        prev = before[Col.HASH]
    return ExportStart(first, prev, Frontier.from_reader(store, first - 1) if first > 1 else Frontier())


def export_events(
    store: AuditStore,
    path: Path,
    *,
    heads: HeadMaker,
    start_seq: int | None = None,
    end_seq: int | None = None,
    proofs: bool = False,
) -> ExportSummary:
    """Export a seq range (default: all stored), ending with a signed tree head that covers its last event.

    The head is the stored one of that size or a fresh one (reason ``export``), so that anyone holding
    the file can tell if its tail is cut. With ``proofs``, each event carries its inclusion proof in
    that head's tree.

    Raises:
        InvalidInput: an empty or impossible range.
        HeadRefused: the tree does not extend the latest signed head (nothing is exported).
    """
    boundary, top = store.boundary(), store.head().seq
    first = max(start_seq or boundary.seq + 1, boundary.seq + 1)
    last = top if end_seq is None else min(end_seq, top)
    if last < first - 1:
        raise InvalidInput(f"nothing to export from seq {first} to {last}")
    head = heads.make("export", size=last)
    assert head is not None  # "export" always returns a head of the size asked for
    tally = ExportTally()
    lines = _export(store, first, last, boundary, head, heads, proofs, tally)
    return write_export(path, lines, tally=tally, tree_size=head.size)


def _export(
    store: AuditStore, first: int, last: int, boundary: ChainHead, head: StoredHead, heads: HeadMaker, proofs: bool,
    tally: ExportTally,
) -> Iterable[bytes]:
    start = _start(store, first, boundary)
    notes = [h.note for h in store.heads(min_size=first - 1, max_size=first - 1) if first > 1 and h.size < last]
    return export_lines(
        store.iter_rows(start_seq=first, end_seq=last), start=start, hash_algorithm=store.hash_algorithm,
        origin=heads.origin, vkey=heads.verifier.vkey, checkpoints=store.checkpoints(min_seq=first - 1, max_seq=last),
        heads=[*notes, head.note], proofs=proof_source(store, head.size) if proofs else None,
        key_id=None, public_key_pem=public_key_pem(heads.verifier.public_key), tally=tally,
    )  # fmt: skip


def stream_export(store: AuditStore, *, heads: HeadMaker, proofs: bool = False) -> Iterable[bytes]:
    """The whole stored trail in the export format, ending with a head made now (for HTTP streaming)."""
    boundary, top = store.boundary(), store.head().seq
    head = heads.make("export", size=top)
    assert head is not None
    return _export(store, boundary.seq + 1, top, boundary, head, heads, proofs, ExportTally())


def archive_events(
    store: AuditStore,
    *,
    before: datetime,
    export_dir: Path,
    retention_days: int,
    heads: HeadMaker,
    chain_keys: Sequence[Ed25519PublicKey] = (),
    hmac_key: bytes | str | None = None,
    recorder: AuditRecorder | None = None,
    actor: str = "system",
) -> ArchiveRecord | None:
    """Export and prune events that occurred before ``before``, if older than the retention.

    A signed tree head of the archive's last seq is made first (it vouches for the boundary); the
    export is verified before the store prunes anything; the purge itself is audited (``audit.archive``).
    The Merkle tree keeps every leaf: proofs for archived events keep working.

    Raises:
        InvalidInput: ``before`` is inside the retention period.
        Conflict: the export does not verify, or another archive ran meanwhile.
    """
    if before.tzinfo is None:
        before = before.replace(tzinfo=UTC)
    before_us = int(before.timestamp() * 1_000_000)
    if before_us > now_us() - retention_days * DAY_US:
        raise InvalidInput(
            f"refusing to archive events newer than the {retention_days}-day retention period",
            details={"before": before.isoformat()},
        )
    last = store.archive_cut(before_us)
    record = None
    if last is not None:
        head = heads.make("archive-boundary", size=last)
        assert head is not None

        def write(path: Path, start: ChainHead, last_seq: int) -> str:
            tally = ExportTally()
            lines = _export(store, start.seq + 1, last_seq, start, head, heads, False, tally)
            summary = write_export(path, lines, tally=tally, tree_size=head.size)
            checked = verify_export_file(path, log_key=heads.verifier, chain_keys=chain_keys, hmac_key=hmac_key,
                                         expected_digest=summary.digest)  # fmt: skip
            if not checked.ok or summary.last_hash != store_hash(store, last_seq):
                raise Conflict(f"refusing to archive: the range does not verify ({checked.trail.kind} at "
                               f"{checked.trail.first_bad_seq}: {checked.trail.detail})")
            return summary.digest

        name = f"audit-archive-{before.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}.ndjson"
        record = store.archive(last, before_us, Path(export_dir) / name, write=write)
    if recorder is not None:
        recorder.record_blocking(
            new_event(
                "audit.archive",
                actor=actor,
                outcome="success",
                message="audit events archived" if record else "nothing to archive",
                metadata={
                    "before_us": before_us,
                    "first_seq": record.first_seq if record else None,
                    "last_seq": record.last_seq if record else None,
                    "digest": record.digest if record else None,
                    "location": record.location if record else None,
                },
            )
        )
    return record


def store_hash(store: AuditStore, seq: int) -> str | None:
    """The chain hash of the stored event ``seq`` (None when it is not stored)."""
    row = next(iter(store.iter_rows(start_seq=seq, end_seq=seq)), None)
    return None if row is None else str(row[Col.HASH])
