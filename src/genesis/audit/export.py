"""The NDJSON export format: header, chain checkpoints, events, signed tree heads, trailer - one JSON object a line.

Version 2 (``genesis-audit-export/2``, ``docs/audit-format.md`` section 5) writes each event as
its canonical bytes with ``hash``, ``type`` (and, when asked, its inclusion ``proof``) added before
the closing brace, so that an offline verifier hashes the bytes it reads instead of re-encoding
them, and ends with the signed tree head that covers its last event. They verify offline with
``genesis.audit.exportfile`` (standard library and ``cryptography`` only). Version 1 files
(no tree) are still read here (:class:`ExportReader`), e.g. by the migration that builds the tree.
"""

from __future__ import annotations

import base64
import hashlib
import operator
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from genesis.audit.checkpoints import Checkpoint
from genesis.audit.events import EVENT_COLUMNS, Col, EventRow, canonical_bytes
from genesis.audit.merkle import Frontier
from genesis.timeutil import now_us

EXPORT_FORMAT_V1: Final = "genesis-audit-export/1"
EXPORT_FORMAT: Final = "genesis-audit-export/2"
_COLUMNS: Final = operator.itemgetter(*EVENT_COLUMNS)

ProofSource = Callable[[Sequence[int]], list[list[bytes]]]
"""Inclusion proofs of leaf indices (seq - 1) in the tree of the export's last head, in order."""


def _escape_separators(line: bytes) -> bytes:
    if b"\xe2\x80" in line or b"\xc2\x85" in line:
        line = line.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        line = line.replace(b"\xc2\x85", b"\\u0085")
    return line


def ndjson_line(obj: Any, *, lenient: bool = False) -> bytes:
    """One JSON line; U+2028/U+2029/U+0085 are escaped so no reader splits the line.

    ``lenient`` stringifies unknown types and non-string keys instead of raising.
    """
    if lenient:
        line = orjson.dumps(obj, default=str, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
    else:
        line = orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    return _escape_separators(line)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def event_line(row: EventRow, proof: Sequence[bytes] | None = None) -> bytes:
    """An event line of format 2: the canonical bytes, ``hash``, ``type`` (and ``proof``) before the last brace."""
    extra = b',"hash":"' + row[Col.HASH].encode("ascii") + b'","type":"event"'
    if proof is not None:
        extra += b',"proof":[' + b",".join(b'"' + base64.b64encode(h) + b'"' for h in proof) + b"]"
    return _escape_separators(canonical_bytes(row)[:-1] + extra + b"}\n")


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What was written: the file's SHA-256 and the exported range."""

    path: Path
    digest: str
    count: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str
    tree_size: int | None = None
    """Size of the signed tree head the export ends with (None: none)."""


@dataclass(slots=True)
class ExportTally:
    """The range an :func:`export_lines` run covered (filled in as the lines are produced)."""

    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str = ""


@dataclass(frozen=True, slots=True)
class ExportStart:
    """Where an export starts: its first seq, the chain hash before it and the tree's frontier there."""

    seq: int
    prev_hash: str
    frontier: Frontier


def export_lines(
    rows: Iterable[EventRow],
    *,
    start: ExportStart,
    hash_algorithm: str,
    origin: str | None = None,
    vkey: str | None = None,
    checkpoints: Iterable[Checkpoint] = (),
    heads: Sequence[str] = (),
    proofs: ProofSource | None = None,
    key_id: str | None = None,
    public_key_pem: str | None = None,
    tally: ExportTally | None = None,
    proof_chunk: int = 1000,
) -> Iterator[bytes]:
    """The export format line by line: header, checkpoints, events, heads, end (constant memory).

    Used both for files (:func:`write_export`) and for streamed HTTP exports. ``heads`` are signed
    notes, ascending by size; the last one should cover the last event. With ``proofs``, each event
    carries its inclusion proof in the tree of the last head.
    """
    tally = tally if tally is not None else ExportTally()
    tally.last_hash = start.prev_hash
    yield ndjson_line({
        "type": "header", "format": EXPORT_FORMAT, "hash_algorithm": hash_algorithm,
        "start_seq": start.seq, "start_prev_hash": start.prev_hash,
        "start_frontier": [b64(h) for h in start.frontier.hashes], "origin": origin, "vkey": vkey,
        "created_at_us": now_us(), "key_id": key_id, "public_key": public_key_pem,
    })  # fmt: skip
    for cp in sorted(checkpoints, key=lambda c: (c.seq, c.created_at_us)):
        yield ndjson_line({"type": "checkpoint", **cp.to_dict()})
    for chunk in _chunks(rows, proof_chunk):
        chunk_proofs = proofs([row[Col.SEQ] - 1 for row in chunk]) if proofs is not None else None
        for i, row in enumerate(chunk):
            yield event_line(row, chunk_proofs[i] if chunk_proofs is not None else None)
        tally.count += len(chunk)
        tally.first_seq = chunk[0][Col.SEQ] if tally.first_seq is None else tally.first_seq
        tally.last_seq, tally.last_hash = chunk[-1][Col.SEQ], chunk[-1][Col.HASH]
    for note in heads:
        yield ndjson_line({"type": "head", "note": note})
    yield ndjson_line({"type": "end", "count": tally.count, "last_seq": tally.last_seq,
                       "last_hash": tally.last_hash})


def _chunks(rows: Iterable[EventRow], size: int) -> Iterator[list[EventRow]]:
    chunk: list[EventRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_export(path: Path, lines: Iterable[bytes], *, tally: ExportTally, tree_size: int | None) -> ExportSummary:
    """Write export ``lines`` atomically (temp file, fsync, rename) and return the file's digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for line in lines:
                digest.update(line)
                out.write(line)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return ExportSummary(path, digest.hexdigest(), tally.count, tally.first_seq, tally.last_seq, tally.last_hash,
                         tree_size)


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
    """Streams an export of format 1 (no tree): the header and checkpoints up front, then the events."""

    handle: IO[bytes]
    header: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    trailer: dict[str, Any] | None = None
    _first: dict[str, Any] | None = None

    @classmethod
    def open(cls, handle: IO[bytes]) -> ExportReader:
        reader = cls(handle)
        reader.header = orjson.loads(handle.readline() or b"{}")
        if reader.header.get("format") != EXPORT_FORMAT_V1:
            raise ValueError(f"not a {EXPORT_FORMAT_V1} file")
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
