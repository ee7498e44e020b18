"""Operations on a stored trail: verify it, export a range, archive old events.

These are the use cases the API and CLI call (``genesis audit verify|export|archive``);
each takes its store and keys explicitly.
"""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from pathlib import Path

from genesis.audit.chain import VerifyReport, verify_chain
from genesis.audit.checkpoints import CheckpointSigner, PublicKeys, checkpoint_is_valid, public_key_pem, trusted_keys
from genesis.audit.events import Col, new_event
from genesis.audit.export import ExportSummary, write_export
from genesis.audit.recorder import AuditRecorder
from genesis.audit.store import ArchiveRecord, AuditStore
from genesis.errors import InvalidInput
from genesis.timeutil import now_us

DAY_US = 86_400_000_000


def verify_store(
    store: AuditStore,
    *,
    hmac_key: bytes | str | None = None,
    public_key: PublicKeys = None,
) -> VerifyReport:
    """Verify the whole stored chain from its boundary (genesis or last archive) to its head.

    When keys are given, an archive boundary must be vouched for by a signed checkpoint
    (the archive writes one in the same transaction); otherwise deleted history could be
    passed off as archived.
    """
    start = store.boundary()
    checkpoints = store.checkpoints()
    keys = trusted_keys(public_key)
    if keys is not None and start.seq > 0:
        vouched = any(
            cp.seq == start.seq and cp.head_hash == start.hash and checkpoint_is_valid(cp, keys) for cp in checkpoints
        )
        if not vouched:
            detail = f"archive boundary at seq {start.seq} is not vouched by a signed checkpoint"
            return VerifyReport(False, 0, start.seq, start.hash, 0, 0, True, "deleted", start.seq, detail)
    return verify_chain(
        store.iter_rows(start_seq=start.seq + 1),
        start_prev_hash=start.hash,
        start_seq=start.seq + 1,
        hmac_key=hmac_key,
        checkpoints=checkpoints,
        public_key=public_key,
    )


def export_events(
    store: AuditStore,
    path: Path,
    *,
    start_seq: int | None = None,
    end_seq: int | None = None,
    signer: CheckpointSigner | None = None,
) -> ExportSummary:
    """Export a seq range (default: all stored) with its checkpoints, verifiable offline.

    With a signer, a fresh "export" checkpoint at the range's end is included so that
    truncation of the file is detectable.
    """
    boundary = store.boundary()
    first = max(start_seq or boundary.seq + 1, boundary.seq + 1)
    rows = store.iter_rows(start_seq=first, end_seq=end_seq)
    head = next(rows, None)
    start_prev = head[Col.PREV_HASH] if head is not None else boundary.hash
    last_seq = end_seq if end_seq is not None else store.head().seq
    checkpoints = store.checkpoints(min_seq=first - 1, max_seq=last_seq)
    if signer is not None and head is not None:
        tail = list(store.iter_rows(start_seq=last_seq, end_seq=last_seq))
        if tail:
            cp = signer.sign(tail[0][Col.SEQ], tail[0][Col.HASH], reason="export")
            store.add_checkpoint(cp)
            checkpoints.append(cp)
    return write_export(
        path,
        itertools.chain([] if head is None else [head], rows),
        start_seq=first,
        start_prev_hash=start_prev,
        hash_algorithm=store.hash_algorithm,
        checkpoints=checkpoints,
        key_id=signer.key_id if signer else None,
        public_key_pem=public_key_pem(signer.public_key) if signer else None,
    )


def archive_events(
    store: AuditStore,
    *,
    before: datetime,
    export_dir: Path,
    retention_days: int,
    signer: CheckpointSigner | None,
    recorder: AuditRecorder | None = None,
    actor: str = "system",
) -> ArchiveRecord | None:
    """Export and prune events that occurred before ``before``, if older than the retention.

    The store writes a signed boundary checkpoint in the pruning transaction; a head
    checkpoint follows, and the purge itself is audited (``audit.archive``).

    Raises:
        InvalidInput: ``before`` is inside the retention period.
    """
    if before.tzinfo is None:
        before = before.replace(tzinfo=UTC)
    before_us = int(before.timestamp() * 1_000_000)
    if before_us > now_us() - retention_days * DAY_US:
        raise InvalidInput(
            f"refusing to archive events newer than the {retention_days}-day retention period",
            details={"before": before.isoformat()},
        )
    name = f"audit-archive-{before.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}.ndjson"
    record = store.archive(before_us, Path(export_dir) / name, signer=signer)
    if record is not None and signer is not None:
        head = store.head()
        store.add_checkpoint(signer.sign(head.seq, head.hash, reason="archive"))
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
