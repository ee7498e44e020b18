"""Offline verification of an export file: no database, nothing but the standard library and ``cryptography``.

``verify_export_file`` checks an export (``docs/audit-format.md`` section 5) against a trusted
log key: the signed tree heads it carries (and any given besides, e.g. from a head log), its
chain checkpoints, every event's chain link and Merkle leaf, and the trailer. It names the first
bad seq exactly as :func:`genesis.audit.verifier.verify_trail` does, because that function
decides every case that is not plainly intact.

Speed (``bench/tree.py``): events that a signed head covers are checked on a fast path that
hashes the bytes of the line as they are (format 2 writes each event as its canonical bytes) and
compares each ``prev_hash`` with the previous ``hash``; it skips the separate chain-link
recomputation, because the tree root at the next head already commits to every leaf, and each
leaf holds ``seq`` and ``prev_hash``. Anything unexpected (a root or chain checkpoint that does
not match, a line not of the expected shape, a ``prev_hash`` that does not link) sends the walk
back to the last point a signature confirmed, and :func:`verify_trail` re-walks from there with
every check; so does the part after the last head. Format 1 files (no tree) are verified by
:func:`verify_trail` alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genesis.audit.canonical import canonical_json
from genesis.audit.merkle import Frontier
from genesis.audit.note import NoteError, NoteVerifier, SignedCheckpoint, open_checkpoint, parse_vkey
from genesis.audit.verifier import Anchor, ChainLink, TrailReport, open_chain_checkpoints, verify_trail

FORMAT_V1: Final = "genesis-audit-export/1"
FORMAT_V2: Final = "genesis-audit-export/2"
COLUMNS: Final = (
    "seq", "event_id", "occurred_at_us", "level", "action", "outcome", "actor", "source_ip", "user_agent",
    "method", "path", "status", "correlation_id", "request_id", "message", "metadata", "prev_hash", "hash",
)  # fmt: skip
_HASH_KEY: Final = b',"hash":"'
_TYPE_TAIL: Final = b'","type":"event"'
_PREV_KEY: Final = b',"prev_hash":"'
_READ_CHUNK: Final = 8 << 20
_TRAILER_WINDOW: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What :func:`verify_export_file` found: the trail report and what the file itself adds."""

    trail: TrailReport
    format: str
    heads_in_file: int
    heads_given: int
    unreadable_heads: int = 0
    """Heads given (from a head log) that are not valid notes of this log: they prove nothing and are skipped."""
    trailer_ok: bool = True

    @property
    def ok(self) -> bool:
        return self.trail.ok

    def to_dict(self) -> dict[str, object]:
        return {**self.trail.to_dict(), "format": self.format, "heads_in_file": self.heads_in_file,
                "heads_given": self.heads_given, "unreadable_heads": self.unreadable_heads}  # fmt: skip


class ExportFormatError(ValueError):
    """The file is not an export this verifier can read (the message says why)."""


@dataclass
class _Layout:
    header: dict[str, Any]
    checkpoints: list[dict[str, Any]]
    events_start: int
    events_end: int
    heads: list[str] = field(default_factory=list)
    trailer: dict[str, Any] | None = None


def _read_layout(handle: IO[bytes], size: int) -> _Layout:
    """Header and chain checkpoints from the start, heads and trailer from the end, the events between."""
    first = handle.readline()
    try:
        header = json.loads(first)
    except ValueError:
        raise ExportFormatError("the first line is not a JSON header") from None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise ExportFormatError("the first line is not an export header")
    if header.get("format") not in (FORMAT_V1, FORMAT_V2):
        raise ExportFormatError(f"unknown export format {header.get('format')!r}")
    checkpoints: list[dict[str, Any]] = []
    offset = len(first)
    while True:  # chain checkpoint lines, up to the first line that is not one
        line = handle.readline()
        try:
            obj = json.loads(line) if line else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or obj.get("type") != "checkpoint":
            break
        checkpoints.append(obj)
        offset += len(line)
    layout = _Layout(header, checkpoints, offset, size)
    # The trailing head and end lines, read backwards from the end of the file.
    end = size
    tail: list[dict[str, Any]] = []
    while end > offset:
        start = max(offset, end - _TRAILER_WINDOW)
        handle.seek(start)
        block = handle.read(end - start)
        cut = block.rfind(b"\n", 0, len(block) - 1) if len(block) > 1 else -1
        if cut < 0 and start > offset:
            raise ExportFormatError("a line at the end of the file is longer than 64 KiB")
        line = block[cut + 1 :]
        try:
            obj = json.loads(line)
        except ValueError:
            break
        if not isinstance(obj, dict) or obj.get("type") not in ("head", "end"):
            break
        tail.append(obj)
        end -= len(line)
    layout.events_end = end
    for obj in reversed(tail):
        if obj.get("type") == "end":
            layout.trailer = obj
        elif isinstance(obj.get("note"), str):
            layout.heads.append(obj["note"])
        else:
            raise ExportFormatError("a head line without its note")
    return layout


def _lines(handle: IO[bytes], start: int, end: int) -> Iterator[bytes]:
    """The lines of ``[start, end)`` without their newlines, read in large blocks."""
    handle.seek(start)
    left = end - start
    rest = b""
    while left > 0:
        block = handle.read(min(_READ_CHUNK, left))
        if not block:
            break
        left -= len(block)
        parts = block.split(b"\n")
        parts[0] = rest + parts[0]
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _row(line: bytes) -> tuple[Any, ...]:
    """An event line as a row in column order (what cannot be read becomes a row that fails verification)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return (None,) * len(COLUMNS)
    if not isinstance(obj, dict) or obj.get("type") != "event":
        return (None,) * len(COLUMNS)
    return tuple(obj.get(name) for name in COLUMNS)


def _rows(handle: IO[bytes], start: int, end: int, counter: list[int]) -> Iterator[tuple[Any, ...]]:
    for line in _lines(handle, start, end):
        counter[0] += 1
        yield _row(line)


def _frontier(header: dict[str, Any], start_seq: int) -> Frontier:
    encoded = header.get("start_frontier", [])
    if not isinstance(encoded, list):
        raise ExportFormatError("start_frontier is not a list")
    try:
        hashes = [base64.b64decode(h, validate=True) for h in encoded]
        return Frontier(start_seq - 1, hashes)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ExportFormatError(f"start_frontier is not the frontier at {start_seq - 1}: {exc}") from None


def _open_heads(notes: Iterable[str], key: NoteVerifier, origin: str | None) -> tuple[list[SignedCheckpoint], int]:
    """Heads from a head log: valid ones, and how many are not valid notes of this log."""
    heads, bad = [], 0
    for note in notes:
        try:
            heads.append(open_checkpoint(note, key, origin=origin))
        except NoteError:
            bad += 1
    return heads, bad


def verify_export_file(
    path: Path,
    *,
    log_key: NoteVerifier | str,
    heads: Sequence[str] = (),
    chain_keys: Sequence[Ed25519PublicKey] = (),
    origin: str | None = None,
    hmac_key: bytes | str | None = None,
    expected_digest: str | None = None,
    workers: int = 1,
) -> ExportReport:
    """Verify an export file offline against the trusted log key.

    Args:
        path: the export (format 1 or 2).
        log_key: the log's key, obtained out of band (its vkey text or a :class:`NoteVerifier`).
        heads: more signed heads to hold the events against (a head log): each must be consistent with
            the file's events; one larger than its last event means the file (or the trail) was cut.
            Notes that are not valid heads of this log are counted (``unreadable_heads``) and skipped.
        chain_keys: keys that sign the chain checkpoints of trails older than the tree (format 1 files,
            and the checkpoints a format 2 file carries); the log key's own public key is always one.
        origin: the log's origin (default: the key's name).
        hmac_key: the chain's key when it is keyed (HMAC-SHA256).
        expected_digest: the file's SHA-256 as recorded (an archive's digest).
        workers: processes that check the events a head covers, in chunks, when there are enough of
            them (``os.cpu_count()`` for a command line; 1, the default, never starts a process).

    Raises:
        ExportFormatError: the file is not an export (no header, unknown format, impossible start).
        NoteError: ``log_key`` is not a valid vkey.
        OSError: the file cannot be read.
    """
    key = parse_vkey(log_key) if isinstance(log_key, str) else log_key
    given, unreadable = _open_heads(heads, key, origin)
    path = Path(path)
    if expected_digest is not None:
        with open(path, "rb") as fh:
            actual = hashlib.file_digest(fh, "sha256").hexdigest()
        if actual != expected_digest:
            report = TrailReport(False, 0, 0, "", "", 0, 0, "modified", None,
                                 f"the file's SHA-256 {actual} is not the recorded {expected_digest}")  # fmt: skip
            return ExportReport(report, "", 0, len(given), unreadable)
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        layout = _read_layout(handle, size)
        header = layout.header
        start_seq, start_prev = header.get("start_seq"), header.get("start_prev_hash")
        if type(start_seq) is not int or start_seq < 1 or not isinstance(start_prev, str):
            raise ExportFormatError("the header's start_seq or start_prev_hash is not valid")
        fmt = str(header["format"])
        frontier = _frontier(header, start_seq) if fmt == FORMAT_V2 else None
        try:
            anchors = open_chain_checkpoints(layout.checkpoints, [key.public_key, *chain_keys])
        except ValueError as exc:
            report = TrailReport(False, 0, start_seq - 1, start_prev, "", 0, start_seq - 1, "bad_checkpoint", None,
                                 str(exc))  # fmt: skip
            return ExportReport(report, fmt, len(layout.heads), len(given), unreadable)
        file_heads: list[SignedCheckpoint] = []
        for note in layout.heads:
            try:
                file_heads.append(open_checkpoint(note, key, origin=origin))
            except NoteError as exc:
                report = TrailReport(False, 0, start_seq - 1, start_prev, "", 0, start_seq - 1, "bad_checkpoint",
                                     None, f"a signed tree head in the file does not verify: {exc}")  # fmt: skip
                return ExportReport(report, fmt, len(layout.heads), len(given), unreadable)
        try:
            if frontier is None:
                report = _verify_v1(handle, layout, key, given, anchors, start_seq, start_prev, hmac_key)
            else:
                report = _verify_v2(handle, layout, key, file_heads + given, anchors, start_seq, start_prev,
                                    frontier, hmac_key, path=path, workers=workers)
        except ValueError as exc:
            raise ExportFormatError(str(exc)) from None
    report, trailer_ok = _check_trailer(report, layout.trailer)
    return ExportReport(report, fmt, len(file_heads), len(given), unreadable, trailer_ok)


def _verify_v1(
    handle: IO[bytes], layout: _Layout, key: NoteVerifier, heads: list[SignedCheckpoint], anchors: list[Anchor],
    start_seq: int, start_prev: str, hmac_key: bytes | str | None,
) -> TrailReport:
    """A format 1 file: the chain and its checkpoints; heads only when it starts at seq 1 (it has no frontier)."""
    if heads and start_seq != 1:
        raise ExportFormatError(
            f"a format 1 export starting at seq {start_seq} carries no tree frontier: it cannot be held against "
            "signed tree heads (verify it without them)"
        )
    return verify_trail(
        _rows(handle, layout.events_start, layout.events_end, [0]), log_key=key, checkpoints=heads,
        anchors=anchors, hmac_key=hmac_key, start_seq=start_seq, start_prev_hash=start_prev,
        start_frontier=Frontier() if start_seq == 1 else _placeholder(start_seq), encoder=canonical_json,
    )  # fmt: skip


def _placeholder(start_seq: int) -> Frontier:
    """A frontier of the right size for a chain-only walk (no heads are held against it, so its hashes never count)."""
    size = start_seq - 1
    return Frontier(size, [bytes(32)] * size.bit_count())


def _check_trailer(report: TrailReport, trailer: dict[str, Any] | None) -> tuple[TrailReport, bool]:
    if not report.ok:
        return report, trailer is not None
    if trailer is None or trailer.get("count") != report.events_checked or trailer.get("last_hash") != report.head_hash:
        bad = replace(report, ok=False, kind="truncated", first_bad_seq=report.last_seq + 1,
                      detail="the export's trailer is missing or does not match its events")  # fmt: skip
        return bad, False
    return report, True


@dataclass
class _State:
    """A point of the walk a signature confirmed: what the fast path resumes from or hands over."""

    size: int
    hashes: list[bytes]
    chain_hash: bytes
    offset: int
    head: int
    anchor: int
    matched: int
    covered: int


def _verify_v2(
    handle: IO[bytes],
    layout: _Layout,
    key: NoteVerifier,
    heads: list[SignedCheckpoint],
    anchors: list[Anchor],
    start_seq: int,
    start_prev: str,
    frontier: Frontier,
    hmac_key: bytes | str | None,
    *,
    path: Path,
    workers: int = 1,
) -> TrailReport:
    base = start_seq - 1
    heads = sorted((h for h in heads if h.size >= base), key=lambda h: h.size)
    marks = sorted((seq, h) for seq, h in anchors if seq >= base)
    at_start = [h for h in heads if h.size == base]
    if any(h.root != frontier.root() for h in at_start):
        return TrailReport(False, 0, base, start_prev, frontier.root().hex(), 0, base, "forged", base,
                           f"the tree root at the start {base} differs from a signed checkpoint")  # fmt: skip
    anchored = [h for seq, h in marks if seq == base]
    if any(h != start_prev for h in anchored):
        return TrailReport(False, 0, base, start_prev, frontier.root().hex(), 0, base, "forged", base,
                           f"the chain hash at the start {base} differs from a signed checkpoint")  # fmt: skip
    saved = _State(base, list(frontier.hashes), start_prev.encode("ascii"), layout.events_start,
                   len(at_start), len(anchored), len(at_start) + len(anchored), base)
    fast_limit = heads[-1].size if heads else base
    if workers > 1 and fast_limit - saved.size >= PARALLEL_MIN:
        saved = _parallel(path, handle, layout, heads, marks, saved, fast_limit, hmac_key, workers) or saved
    while saved.size < fast_limit:
        ahead = _fast(handle, layout, heads, marks, saved, fast_limit, hmac_key)
        if ahead.size == saved.size:  # the first look could not confirm the next head: look carefully
            ahead = _fast(handle, layout, heads, marks, saved, fast_limit, hmac_key, careful=True)
            if ahead.size == saved.size:
                break  # neither could: the precise walk from here names what is wrong
        saved = ahead
    # Everything from the last confirmed point on, with every check (the fast path stopped there, or
    # reached the last head: what follows, if anything, no head covers).
    counter = [0]
    rest = verify_trail(
        _rows(handle, saved.offset, layout.events_end, counter), log_key=key,
        checkpoints=heads[saved.head:], anchors=marks[saved.anchor:], hmac_key=hmac_key,
        start_seq=saved.size + 1, start_prev_hash=saved.chain_hash.decode("ascii"),
        start_frontier=Frontier(saved.size, saved.hashes), encoder=canonical_json,
    )  # fmt: skip
    return replace(rest, events_checked=saved.size - base + rest.events_checked,
                   checkpoints_matched=saved.matched + rest.checkpoints_matched,
                   covered_size=max(saved.covered, rest.covered_size))  # fmt: skip


def _blocks(handle: IO[bytes], start: int, end: int) -> Iterator[list[bytes]]:
    """The lines of ``[start, end)`` without their newlines, as lists of whole lines read in large blocks."""
    handle.seek(start)
    left = end - start
    rest = b""
    while left > 0:
        block = handle.read(min(_READ_CHUNK, left))
        if not block:
            break
        left -= len(block)
        parts = block.split(b"\n")
        parts[0] = rest + parts[0]  # (not rest + block: that would copy the whole block once more)
        rest = parts.pop()
        if parts:
            yield parts
    if rest:
        yield [rest]


_PLAIN: Final = len(_HASH_KEY) + 64 + len(_TYPE_TAIL) + 1
"""Bytes after the canonical part of an event line without a proof: ``,"hash":"<64>","type":"event"}``."""
_PLAIN_TAIL: Final = _TYPE_TAIL + b"}"
_SEPARATORS: Final = (b"\\u2028", b"\\u2029", b"\\u0085")


def _canonical_part(line: bytes) -> tuple[bytes, bytes] | None:
    """``(canonical bytes without the closing brace, hash)`` of an event line of any shape (None: not one)."""
    p = line.rfind(_HASH_KEY)
    if p < 0 or line[p + 73 : p + 73 + len(_TYPE_TAIL)] != _TYPE_TAIL or line[-1:] != b"}":
        return None
    body = line[:p]
    if b"\\u" in body and any(sep in body for sep in _SEPARATORS):
        try:  # the export escaped a line separator inside a string: re-encode from the parsed row
            body = canonical_json(_row(line))[:-1]
        except (TypeError, ValueError):
            return None
    return body, line[p + 9 : p + 73]


_ZERO: Final = hashlib.sha256(b"\x00")


def _parse(part: list[bytes], careful: bool) -> tuple[list[bytes], list[bytes], list[bytes], bytes] | None:
    """Leaf hashes, chain hashes and prev_hashes of event lines, and the last one's canonical part (None: one is not).

    Lines of the usual shape (no proof) are handled with list operations on the lines themselves,
    without copying their canonical part; anything off shows up as a link that does not match or a
    root that differs from the signed one, and the caller looks again ``careful``ly: then escaped
    line separators are re-encoded (a search that costs as much as hashing the line, hence not
    done on the first look) and lines of other shapes are parsed one by one.
    """
    plain = all([line.endswith(_PLAIN_TAIL) for line in part])
    if careful and plain:
        plain = all([line.startswith(_HASH_KEY, -_PLAIN) and not (b"\\u" in line and any(
            sep in line for sep in _SEPARATORS)) for line in part])  # fmt: skip
    if plain:
        prevs = [line[k + 14 : k + 78] for line in part for k in (line.rfind(_PREV_KEY, 0, -_PLAIN),)]
        hashes = [line[-81:-17] for line in part]
        leaves = []
        zero = _ZERO
        for line in part:
            h = zero.copy()
            h.update(memoryview(line)[:-_PLAIN])
            h.update(b"}")
            leaves.append(h.digest())
        return leaves, hashes, prevs, part[-1][:-_PLAIN]
    if not careful:
        return None
    pairs = [_canonical_part(line) for line in part]
    if any(pair is None for pair in pairs):
        return None
    bodies = [pair[0] for pair in pairs if pair is not None]
    keys = [body.rfind(_PREV_KEY) for body in bodies]
    if -1 in keys:
        return None
    sha = hashlib.sha256
    return ([sha(b"\x00" + body + b"}").digest() for body in bodies], [pair[1] for pair in pairs if pair is not None],
            [body[k + 14 : k + 78] for body, k in zip(bodies, keys, strict=True)], bodies[-1])  # fmt: skip


def _fast(
    handle: IO[bytes], layout: _Layout, heads: list[SignedCheckpoint], marks: list[Anchor], state: _State,
    limit: int, hmac_key: bytes | str | None, careful: bool = False,
) -> _State:
    """Walk the events a head covers; return the last point a head or chain checkpoint confirmed.

    ``careful`` stops at the first point it confirms (it is the second look at a range the first
    look could not confirm).

    Lines are taken in runs that end at the next head or checkpoint, and each run is checked with
    list operations (the slicing, the ``prev_hash`` links, the leaf hashes) before the frontier is
    extended leaf by leaf: that is what makes this path several times cheaper than re-encoding.
    """
    sha = hashlib.sha256
    size, hashes, prev, offset = state.size, list(state.hashes), state.chain_hash, state.offset
    head_i, anchor_i, matched = state.head, state.anchor, state.matched
    saved = state
    link = ChainLink(hmac_key)

    def next_mark() -> int:
        options = [heads[head_i].size] if head_i < len(heads) else []
        if anchor_i < len(marks):
            options.append(marks[anchor_i][0])
        return min(options) if options else limit

    mark = next_mark()
    for block in _blocks(handle, offset, layout.events_end):
        i = 0
        while i < len(block):
            part = block[i : i + min(len(block) - i, mark - size)]
            parsed = _parse(part, careful)
            if parsed is None:
                return saved
            leaves, chain, prevs, last_body = parsed
            if prevs[0] != prev or prevs[1:] != chain[:-1]:
                return saved  # a prev_hash that does not link: the precise walk names it
            for leaf in leaves:
                n = size
                while n & 1:
                    leaf = sha(b"\x01" + hashes.pop() + leaf).digest()
                    n >>= 1
                hashes.append(leaf)
                size += 1
            prev = chain[-1]
            offset += sum(map(len, part)) + len(part)
            i += len(part)
            if size < mark:
                continue
            # The leaves commit to every earlier row's hash (as the next row's prev_hash), not to this row's
            # own: recompute its link before a signature confirms this point.
            try:
                if link.digest(bytes.fromhex(prevs[-1].decode("ascii")) + last_body + b"}").hex().encode() != prev:
                    return saved
            except ValueError:
                return saved
            root = Frontier(size, hashes).root() if head_i < len(heads) and heads[head_i].size == size else b""
            while head_i < len(heads) and heads[head_i].size == size:
                if heads[head_i].root != root:
                    return saved
                head_i += 1
                matched += 1
            while anchor_i < len(marks) and marks[anchor_i][0] == size:
                if marks[anchor_i][1].encode("ascii") != prev:
                    return saved
                anchor_i += 1
                matched += 1
            saved = _State(size, list(hashes), prev, offset, head_i, anchor_i, matched, size)
            if size >= limit or careful:
                return saved
            mark = next_mark()
    return saved


# --- chunks checked in parallel ---------------------------------------------------------------------

PARALLEL_MIN = 1 << 17
"""Events a head must cover before checking them in worker processes pays for starting those."""
_MIN_CHUNK_BITS = 16


@dataclass(frozen=True)
class _Chunk:
    """Leaves ``[first, last)`` of the export, lines ``[start, end)`` of the file, and the sizes to report at."""

    first: int
    last: int
    start: int
    end: int
    marks: tuple[int, ...]
    anchors: tuple[Anchor, ...]
    frontier: tuple[bytes, ...] | None
    """The tree's frontier at ``first`` (the first chunk); None: a chunk aligned to its size, checked alone."""


@dataclass(frozen=True)
class _ChunkResult:
    ok: bool
    first_prev: bytes = b""
    last_hash: bytes = b""
    frontiers: tuple[tuple[int, tuple[bytes, ...], int], ...] = ()
    """``(size, frontier hashes, file offset after that line)`` at each mark and at the chunk's end."""


def _check_chunk(path: str, chunk: _Chunk, hmac_key: bytes | str | None) -> _ChunkResult:
    """A worker's part of the fast path: leaves, links and chain checkpoints of one chunk; frontiers at its marks.

    An aligned chunk builds its own tree from empty: its frontier hashes are the perfect nodes of the
    whole tree over its range (they never straddle its start), which the parent joins to the tree
    before it. It confirms nothing itself: the parent compares the roots.
    """
    sha = hashlib.sha256
    local = chunk.frontier is None
    size = 0 if local else chunk.first
    hashes = [] if local else list(chunk.frontier or ())
    base = chunk.first if local else 0
    prev = b""
    offset = chunk.start
    link = ChainLink(hmac_key)
    marks = [*chunk.marks, chunk.last]
    anchors = dict(chunk.anchors)
    out: list[tuple[int, tuple[bytes, ...], int]] = []
    first_prev = b""
    with open(path, "rb") as handle:
        for block in _blocks(handle, chunk.start, chunk.end):
            i = 0
            while i < len(block):
                mark = marks[len(out)] - base
                part = block[i : i + min(len(block) - i, mark - size)]
                parsed = _parse(part, False) or _parse(part, True)
                if not part or parsed is None:
                    return _ChunkResult(False)
                leaves, chain, prevs, last_body = parsed
                if size == (0 if local else chunk.first):
                    first_prev = prevs[0]
                elif prevs[0] != prev:
                    return _ChunkResult(False)
                if prevs[1:] != chain[:-1]:
                    return _ChunkResult(False)
                for leaf in leaves:
                    n = size
                    while n & 1:
                        leaf = sha(b"\x01" + hashes.pop() + leaf).digest()
                        n >>= 1
                    hashes.append(leaf)
                    size += 1
                prev = chain[-1]
                offset += sum(map(len, part)) + len(part)
                i += len(part)
                if size < mark:
                    continue
                try:
                    if link.digest(bytes.fromhex(prevs[-1].decode("ascii")) + last_body + b"}").hex().encode() != prev:
                        return _ChunkResult(False)
                except ValueError:
                    return _ChunkResult(False)
                expected = anchors.get(size + base)
                if expected is not None and expected.encode("ascii") != prev:
                    return _ChunkResult(False)
                out.append((size + base, tuple(hashes), offset))
                if len(out) == len(marks):
                    return _ChunkResult(True, first_prev, prev, tuple(out))
    return _ChunkResult(False)  # the file ended before the chunk did


def _seq_at(handle: IO[bytes], offset: int) -> tuple[int, int] | None:
    """``(seq, length)`` of the event line starting at ``offset`` (None: not one)."""
    handle.seek(offset)
    line = handle.readline(1 << 20)
    k = line.rfind(b',"seq":', 0, max(0, len(line) - _PLAIN))
    end = line.find(b",", k + 7)
    try:
        return (int(line[k + 7 : end]), len(line)) if k >= 0 and end > 0 else None
    except ValueError:
        return None


def _line_start_after(handle: IO[bytes], offset: int) -> int:
    """The first line start at or after ``offset``."""
    if offset == 0:
        return 0
    handle.seek(offset - 1)
    return offset - 1 + len(handle.readline(1 << 20))


def _locate(handle: IO[bytes], lo: int, hi: int, seq: int) -> int | None:
    """The offset of the line of ``seq`` in ``[lo, hi)`` (line starts), by its ``seq`` field (None: not found).

    The file is not trusted here: a line that is not where its seq says only makes the chunks wrong,
    which their check then reports, and the whole range is walked in order instead.
    """
    for _ in range(64):
        if hi - lo < 1 << 16:
            at = lo
            while at < hi:
                found = _seq_at(handle, at)
                if found is None:
                    return None
                if found[0] == seq:
                    return at
                at += found[1]
            return None
        at = _line_start_after(handle, (lo + hi) // 2)
        found = _seq_at(handle, at) if at < hi else None
        if found is None:
            return None
        if found[0] == seq:
            return at
        if found[0] < seq:
            lo = at + found[1]
        else:
            hi = at
    return None


def _parallel(
    path: Path, handle: IO[bytes], layout: _Layout, heads: list[SignedCheckpoint], marks: list[Anchor],
    state: _State, limit: int, hmac_key: bytes | str | None, workers: int,
) -> _State | None:
    """Confirm ``[state.size, limit)`` with chunks checked in worker processes; None: do it in order instead.

    Chunks end at multiples of a power of two, so each after the first is a run of whole perfect
    subtrees of the tree; the parent joins their frontiers (``Frontier.push_subtree``), compares
    the roots at every head, and checks that each chunk's first ``prev_hash`` is the hash its
    predecessor ended with. Any disagreement, and the range is walked in order (which then names it).
    """
    import concurrent.futures
    import multiprocessing

    total = limit - state.size
    step = 1 << max(_MIN_CHUNK_BITS, (total // (4 * workers)).bit_length() - 1)
    bounds = [state.size, *range((state.size // step + 1) * step, limit, step), limit]
    offsets = [state.offset]
    for first in bounds[1:-1]:
        found = _locate(handle, offsets[-1], layout.events_end, first + 1)
        if found is None:
            return None
        offsets.append(found)
    end = _locate(handle, offsets[-1], layout.events_end, limit + 1)
    offsets.append(layout.events_end if end is None else end)
    sizes = sorted({h.size for h in heads} | {seq for seq, _ in marks})
    chunks = [
        _Chunk(a, b, offsets[j], offsets[j + 1], tuple(s for s in sizes if a < s < b),
               tuple((seq, h) for seq, h in marks if a < seq <= b), tuple(state.hashes) if j == 0 else None)
        for j, (a, b) in enumerate(itertools.pairwise(bounds))
    ]  # fmt: skip
    context = multiprocessing.get_context("spawn")  # no fork: the caller may have threads
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_check_chunk, [str(path)] * len(chunks), chunks, [hmac_key] * len(chunks)))
    except Exception:  # no worker could start (e.g. a main module spawn cannot re-import): walk in order
        return None
    frontier = Frontier(state.size, state.hashes)
    prev = state.chain_hash
    by_size: dict[int, list[SignedCheckpoint]] = {}
    for h in heads:
        by_size.setdefault(h.size, []).append(h)
    matched = state.matched
    for chunk, result in zip(chunks, results, strict=True):
        if not result.ok or result.first_prev != prev:
            return None
        for size, hashes, _ in result.frontiers:
            if chunk.frontier is not None:
                joined = Frontier(size, hashes)
            else:
                joined = frontier.copy()
                local = size - chunk.first
                levels = [b for b in range(local.bit_length() - 1, -1, -1) if local >> b & 1]
                for level, node in zip(levels, hashes, strict=True):
                    joined.push_subtree(level, node)
            if any(h.root != joined.root() for h in by_size.get(size, ())):
                return None
            matched += len(by_size.get(size, ())) + sum(1 for seq, _ in marks if seq == size)
            if size == chunk.last:
                frontier = joined
        prev = result.last_hash
    offset = results[-1].frontiers[-1][2]
    head_i = sum(1 for h in heads if h.size <= limit)
    anchor_i = sum(1 for seq, _ in marks if seq <= limit)
    return _State(limit, list(frontier.hashes), prev, offset, head_i, anchor_i, matched, limit)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m genesis.audit.exportfile --key VKEY [--heads HEAD_LOG] EXPORT``: exit 0 ok, 1 broken, 2 unreadable.

    The same check as ``genesis audit verify --file``, for a machine that has only the standard
    library and ``cryptography`` (and these modules).
    """
    import argparse

    from genesis.audit.headlog import read as read_head_log

    parser = argparse.ArgumentParser(prog="python -m genesis.audit.exportfile", description=main.__doc__)
    parser.add_argument("export", type=Path)
    parser.add_argument("--key", required=True, help="the log's vkey, obtained out of band")
    parser.add_argument("--heads", type=Path, help="a head log: the export must be consistent with every head in it")
    args = parser.parse_args(argv)
    try:
        notes = read_head_log(args.heads).notes if args.heads else []
        report = verify_export_file(args.export, log_key=args.key, heads=notes, workers=os.cpu_count() or 1)
    except (ExportFormatError, NoteError, OSError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 2
    print(json.dumps(report.to_dict()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
