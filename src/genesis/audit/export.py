"""The NDJSON export format: header, checkpoints, events, trailer - one JSON object a line.

Exports verify offline (``verify_export``) with only the trusted public key and,
for keyed chains, the HMAC key. The format is specified in ``docs/audit-format.md``.
"""

from __future__ import annotations

import hashlib
import operator
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from genesis.audit.chain import VerifyReport, verify_chain
from genesis.audit.checkpoints import Checkpoint, PublicKeys
from genesis.audit.events import EVENT_COLUMNS, Col, EventRow
from genesis.timeutil import now_us

EXPORT_FORMAT: Final = "genesis-audit-export/1"
_COLUMNS: Final = operator.itemgetter(*EVENT_COLUMNS)


def ndjson_line(obj: Any, *, lenient: bool = False) -> bytes:
    """One JSON line; U+2028/U+2029/U+0085 are escaped so no reader splits the line.

    ``lenient`` stringifies unknown types and non-string keys instead of raising.
    """
    if lenient:
        line = orjson.dumps(obj, default=str, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
    else:
        line = orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    if b"\xe2\x80" in line or b"\xc2\x85" in line:
        line = line.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        line = line.replace(b"\xc2\x85", b"\\u0085")
    return line


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What was written: the file's SHA-256 and the exported range."""

    path: Path
    digest: str
    count: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str


@dataclass(slots=True)
class ExportTally:
    """The range an :func:`export_lines` run covered (filled in as the lines are produced)."""

    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str = ""


def export_lines(
    rows: Iterable[EventRow],
    *,
    start_seq: int,
    start_prev_hash: str,
    hash_algorithm: str,
    checkpoints: Iterable[Checkpoint] = (),
    key_id: str | None = None,
    public_key_pem: str | None = None,
    tally: ExportTally | None = None,
) -> Iterator[bytes]:
    """The export format line by line: header, checkpoints, events, end (constant memory).

    Used both for files (:func:`write_export`) and for streamed HTTP exports.
    """
    tally = tally if tally is not None else ExportTally()
    tally.last_hash = start_prev_hash
    yield ndjson_line({
        "type": "header", "format": EXPORT_FORMAT, "hash_algorithm": hash_algorithm,
        "start_seq": start_seq, "start_prev_hash": start_prev_hash, "created_at_us": now_us(),
        "key_id": key_id, "public_key": public_key_pem,
    })  # fmt: skip
    for cp in sorted(checkpoints, key=lambda c: (c.seq, c.created_at_us)):
        yield ndjson_line({"type": "checkpoint", **cp.to_dict()})
    for row in rows:
        obj: dict[str, Any] = {"type": "event"}
        obj.update(zip(EVENT_COLUMNS, row, strict=True))
        yield ndjson_line(obj)
        tally.count += 1
        tally.first_seq = row[Col.SEQ] if tally.first_seq is None else tally.first_seq
        tally.last_seq, tally.last_hash = row[Col.SEQ], row[Col.HASH]
    yield ndjson_line({"type": "end", "count": tally.count, "last_seq": tally.last_seq,
                       "last_hash": tally.last_hash})


def write_export(
    path: Path,
    rows: Iterable[EventRow],
    *,
    start_seq: int,
    start_prev_hash: str,
    hash_algorithm: str,
    checkpoints: Iterable[Checkpoint] = (),
    key_id: str | None = None,
    public_key_pem: str | None = None,
) -> ExportSummary:
    """Write an export atomically (temp file, fsync, rename) and return its digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    digest = hashlib.sha256()
    tally = ExportTally()
    with open(tmp, "wb") as out:
        for line in export_lines(
            rows, start_seq=start_seq, start_prev_hash=start_prev_hash, hash_algorithm=hash_algorithm,
            checkpoints=checkpoints, key_id=key_id, public_key_pem=public_key_pem, tally=tally,
        ):
            digest.update(line)
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return ExportSummary(path, digest.hexdigest(), tally.count, tally.first_seq, tally.last_seq, tally.last_hash)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the ``digest`` of ``audit_archives``)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass
class ExportReader:
    """Streams an export: the header and checkpoints up front, then the events."""

    handle: IO[bytes]
    header: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    trailer: dict[str, Any] | None = None
    _first: dict[str, Any] | None = None

    @classmethod
    def open(cls, handle: IO[bytes]) -> ExportReader:
        reader = cls(handle)
        reader.header = orjson.loads(handle.readline() or b"{}")
        if reader.header.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not a {EXPORT_FORMAT} file")
        for line in handle:
            obj = orjson.loads(line)
            if obj.get("type") != "checkpoint":
                reader._first = obj
                break
            reader.checkpoints.append(
                Checkpoint(*(obj[k] for k in ("seq", "head_hash", "created_at_us", "key_id", "signature", "reason")))
            )
        return reader

    def rows(self) -> Iterator[EventRow]:
        """Event rows in file order; stops at the trailer line."""
        pending = self._first
        self._first = None
        loads, columns = orjson.loads, _COLUMNS
        lines = (loads(line) for line in self.handle)
        for obj in ([pending] if pending is not None else []), lines:
            for item in obj:
                if item.get("type") != "event":
                    if item.get("type") == "end":
                        self.trailer = item
                        return
                    raise ValueError(f"unexpected {item.get('type')!r} line among the events")
                try:
                    yield columns(item)
                except KeyError:  # a column is missing: yield what is there, the chain will not verify
                    yield tuple(item.get(name) for name in EVENT_COLUMNS)


def verify_export(
    path: Path,
    *,
    hmac_key: bytes | str | None = None,
    public_key: PublicKeys = None,
    expected_digest: str | None = None,
) -> VerifyReport:
    """Verify an export file offline: digest (when given), chain, checkpoints and trailer."""
    if expected_digest is not None and file_digest(path) != expected_digest:
        return VerifyReport(False, 0, 0, "", 0, 0, public_key is not None, "modified", None,
                            "file digest differs from the recorded archive digest")  # fmt: skip
    with open(path, "rb") as fh:
        try:
            reader = ExportReader.open(fh)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return VerifyReport(False, 0, 0, "", 0, 0, public_key is not None, "modified", None, str(exc))
        start_seq = int(reader.header["start_seq"])
        try:
            report = verify_chain(
                reader.rows(),
                start_prev_hash=str(reader.header["start_prev_hash"]),
                start_seq=start_seq,
                hmac_key=hmac_key,
                checkpoints=reader.checkpoints,
                public_key=public_key,
            )
        except (ValueError, orjson.JSONDecodeError) as exc:  # a damaged line among the events
            return VerifyReport(False, 0, 0, "", 0, 0, public_key is not None, "modified", None, str(exc))
        if not report.ok:
            return report
        trailer = reader.trailer
        if (
            trailer is None
            or trailer.get("last_hash") != report.head_hash
            or trailer.get("count") != (report.events_checked)
        ):
            return VerifyReport(False, report.events_checked, report.last_seq, report.head_hash,
                                report.checkpoints_matched, report.covered_seq, report.signatures_checked,
                                "truncated", report.last_seq + 1, "export trailer missing or inconsistent")  # fmt: skip
        return report
