"""The offline verifier: event rows, a trusted log key and signed tree heads, nothing else.

Recomputes, in one pass and constant memory (the O(log n) frontier and the
checkpoints aside), every row's canonical bytes, its chain link (SHA-256, or
HMAC-SHA256 with the chain's key) and its Merkle leaf, and holds the tree root at
each checkpoint's size against the signed root. It names the first bad seq:

* a row changed, deleted, inserted or moved breaks the chain at that seq
  (``modified``/``deleted``/``inserted``/``reordered``, as ``genesis.audit.chain``);
* rows rewritten with recomputed hashes break the tree: the root at the next signed
  size differs (``forged``, first bad seq = the last size that matched + 1);
* a cut tail leaves a signed size beyond the last row (``truncated`` at last + 1);
* a head that is malformed or not signed by the trusted key (``bad_checkpoint``).

It also checks single proofs: that an event is in a signed tree
(:func:`check_inclusion`) and that a signed tree extends an earlier one
(:func:`check_consistency`). Sizes and roots are only ever taken from verified
:class:`~genesis.audit.note.SignedCheckpoint` values, never from separate arguments.

Dependencies: the standard library, ``cryptography`` and the three modules it is
built on (``merkle``, ``note``, ``canonical``); an import-linter contract in
``pyproject.toml`` keeps it so, and the algorithm is specified in
``docs/audit-format.md`` for anyone who wants to write their own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from genesis.audit.canonical import canonical_json
from genesis.audit.merkle import Frontier, ProofError, leaf_hash, verify_consistency, verify_inclusion
from genesis.audit.note import NoteError, NoteVerifier, SignedCheckpoint, open_checkpoint, parse_vkey

_HEX64: Final = re.compile(r"[0-9a-f]{64}")

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of seq 1 (``docs/audit-format.md`` section 3)."""

Encoder = Callable[[Sequence[Any]], bytes]
"""A row's canonical bytes; raises TypeError or ValueError for a row that has none."""

Anchor = tuple[int, str]
"""``(seq, hash)`` that a verified signature vouches for: a chain checkpoint of a trail older than its tree."""

BreakKind = Literal["modified", "deleted", "inserted", "reordered", "truncated", "forged", "bad_checkpoint"]


@dataclass(frozen=True, slots=True)
class TrailReport:
    """Outcome of :func:`verify_trail`; on failure ``kind`` and ``first_bad_seq`` say what and where."""

    ok: bool
    events_checked: int
    last_seq: int
    head_hash: str
    """Chain hash of ``last_seq`` (hex)."""
    root: str
    """Tree root of the first ``last_seq`` events (hex), as far as the walk got."""
    checkpoints_matched: int
    covered_size: int
    """The largest tree size a verified signed checkpoint vouches for."""
    kind: BreakKind | None = None
    first_bad_seq: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ChainLink:
    """SHA-256 or HMAC-SHA256 chain links (HMAC pads precomputed, as ``ChainHasher``): ``digest(prev || body)``."""

    def __init__(self, hmac_key: bytes | str | None) -> None:
        if isinstance(hmac_key, str):
            hmac_key = hmac_key.encode("utf-8")
        self.inner: Any = None
        self.outer: Any = None
        if hmac_key:
            key = hashlib.sha256(hmac_key).digest() if len(hmac_key) > 64 else hmac_key
            key = key.ljust(64, b"\0")
            self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
            self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, data: bytes) -> bytes:
        if self.inner is None:
            return hashlib.sha256(data).digest()
        inner = self.inner.copy()
        inner.update(data)
        outer = self.outer.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest


CHAIN_CHECKPOINT_PREFIX: Final = "genesis-audit-checkpoint/v1"


def chain_key_id(public_key: Ed25519PublicKey) -> str:
    """The key id of a chain checkpoint: the first 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def open_chain_checkpoints(
    checkpoints: Iterable[Mapping[str, Any]], public_keys: Sequence[Ed25519PublicKey]
) -> list[Anchor]:
    """Verify chain checkpoints (``docs/audit-format.md`` section 4) and return what they vouch for.

    Each checkpoint is a mapping with ``seq``, ``head_hash``, ``created_at_us``, ``key_id`` and
    ``signature`` (an export's checkpoint line, or a row of ``audit_checkpoints``).

    Raises:
        ValueError: a checkpoint is malformed, names no trusted key or its signature does not verify.
    """
    keys = {chain_key_id(k): k for k in public_keys}
    anchors: list[Anchor] = []
    for cp in checkpoints:
        seq, head_hash, created = cp.get("seq"), cp.get("head_hash"), cp.get("created_at_us")
        if type(seq) is not int or type(created) is not int or not isinstance(head_hash, str):
            raise ValueError(f"a chain checkpoint is malformed: {dict(cp)!r:.200}")
        key = keys.get(str(cp.get("key_id")))
        if key is None:
            raise ValueError(f"the chain checkpoint at seq {seq} names no trusted key ({cp.get('key_id')!r})")
        payload = f"{CHAIN_CHECKPOINT_PREFIX}\n{seq}\n{head_hash}\n{created}\n".encode()
        try:
            key.verify(bytes.fromhex(str(cp.get("signature"))), payload)
        except (InvalidSignature, ValueError):
            raise ValueError(f"the chain checkpoint at seq {seq} (key {cp.get('key_id')}) has no valid signature") \
                from None
        anchors.append((seq, head_hash))
    return anchors


def _trusted_key(log_key: NoteVerifier | str) -> NoteVerifier:
    return parse_vkey(log_key) if isinstance(log_key, str) else log_key


def verify_trail(
    rows: Iterable[Sequence[Any]],
    *,
    log_key: NoteVerifier | str | None,
    checkpoints: Iterable[str | bytes | SignedCheckpoint] = (),
    anchors: Iterable[Anchor] = (),
    origin: str | None = None,
    witnesses: Sequence[NoteVerifier] = (),
    witness_quorum: int = 0,
    hmac_key: bytes | str | None = None,
    start_seq: int = 1,
    start_prev_hash: str = GENESIS_HASH,
    start_frontier: Frontier | None = None,
    encoder: Encoder = canonical_json,
) -> TrailReport:
    """Verify event rows in seq order against signed tree heads, in one pass.

    Args:
        rows: stored rows in ``EVENT_COLUMNS`` order (18 values, ``hash`` last), ascending by seq.
        log_key: the log's trusted key (a :class:`NoteVerifier` or its vkey text), obtained out of band;
            None checks the chain alone (no signed checkpoint may then be given as a note).
        checkpoints: signed checkpoint notes, in any order; each must verify under ``log_key`` (an already
            opened :class:`SignedCheckpoint` is taken as verified: its caller opened it with the same key).
        anchors: ``(seq, hash)`` pairs whose signatures the caller verified (the chain checkpoints of
            ``docs/audit-format.md`` section 4, which trails kept before they had a tree): the chain
            hash at each seq must be that hash.
        origin: the expected origin of the checkpoints (default: the key's name).
        witnesses: trusted witness keys; ``witness_quorum`` of them must cosign every checkpoint.
        hmac_key: the chain's key when it was written with ``hmac-sha256``.
        start_seq: seq of the first row (after an archived prefix: the boundary + 1).
        start_prev_hash: ``prev_hash`` of the first row.
        start_frontier: the tree's frontier at ``start_seq - 1`` (needed when ``start_seq > 1``); it is
            not trusted: a wrong one makes every later root differ.
        encoder: the canonical encoding of a row (``docs/audit-format.md`` section 2); where orjson is
            installed, ``genesis.audit.events.canonical_bytes`` gives the same bytes about 40% faster.

    Raises:
        ValueError: a start that cannot be one (``start_seq`` not positive, ``start_prev_hash`` not 64
            lower-case hex digits, ``start_frontier`` missing or of the wrong size): check an export
            header's values with this before calling it tampering.
        NoteError: ``log_key`` is not a valid vkey.
    """
    key = _trusted_key(log_key) if log_key is not None else None
    if type(start_seq) is not int or start_seq < 1:
        raise ValueError(f"start_seq must be a positive integer, got {start_seq!r}")
    if not isinstance(start_prev_hash, str) or not _HEX64.fullmatch(start_prev_hash):
        raise ValueError("start_prev_hash must be 64 lower-case hex digits")
    base = start_seq - 1
    if start_frontier is None:
        if base != 0:
            raise ValueError("verifying from seq > 1 needs the tree frontier at the boundary")
        start_frontier = Frontier()
    if start_frontier.size != base:
        raise ValueError(f"the start frontier has size {start_frontier.size}, not {base}")
    frontier = start_frontier.copy()

    heads: list[SignedCheckpoint] = []
    for note in checkpoints:
        if isinstance(note, SignedCheckpoint):
            head = note
        elif key is None:
            raise ValueError("signed checkpoints need the log key to be checked")
        else:
            try:
                head = open_checkpoint(note, key, origin=origin, witnesses=witnesses, witness_quorum=witness_quorum)
            except NoteError as exc:
                return TrailReport(False, 0, base, start_prev_hash, frontier.root().hex(), 0, base, "bad_checkpoint",
                                   None, f"a checkpoint does not verify: {exc}")  # fmt: skip
        if head.size >= base:  # smaller heads cover archived history only
            heads.append(head)
    heads.sort(key=lambda h: h.size)
    marks = sorted((seq, h) for seq, h in anchors if seq >= base)
    walk = _Walk(frontier, heads, marks, base, start_prev_hash)
    if not walk.check_heads(base):
        return walk.report(0, "forged", base, f"the tree root at the boundary {base} differs from a signed checkpoint")
    if not walk.check_anchors(base, start_prev_hash):
        return walk.report(0, "forged", base, f"the chain hash at the boundary {base} differs from a signed checkpoint")
    return walk.run(iter(rows), ChainLink(hmac_key), encoder)


class _Walk:
    """The state of one :func:`verify_trail` pass."""

    def __init__(
        self, frontier: Frontier, heads: list[SignedCheckpoint], anchors: list[Anchor], base: int, prev_hex: str
    ) -> None:
        self.frontier = frontier
        self.heads = heads
        self.next_head = 0
        self.anchors = anchors
        self.next_anchor = 0
        self.matched = 0
        self.covered = base
        self.base = base
        self.last = base
        self.prev_hex = prev_hex

    def check_heads(self, size: int) -> bool:
        """Hold every head of ``size`` against the frontier's root (the frontier is at ``size``)."""
        heads = self.heads
        i = self.next_head
        if i < len(heads) and heads[i].size == size:
            root = self.frontier.root()
            while i < len(heads) and heads[i].size == size:
                if heads[i].root != root:
                    return False
                self.matched += 1
                i += 1
            self.next_head = i
            self.covered = size
        return True

    def check_anchors(self, seq: int, chain_hash: str) -> bool:
        """Hold every anchor at ``seq`` against the chain hash there."""
        anchors = self.anchors
        i = self.next_anchor
        while i < len(anchors) and anchors[i][0] == seq:
            if anchors[i][1] != chain_hash:
                return False
            self.matched += 1
            i += 1
        if i != self.next_anchor:
            self.next_anchor = i
            self.covered = max(self.covered, seq)
        return True

    def next_mark(self) -> int:
        """The next seq at which a head or an anchor is checked (-1: none)."""
        marks = [self.heads[self.next_head].size] if self.next_head < len(self.heads) else []
        if self.next_anchor < len(self.anchors):
            marks.append(self.anchors[self.next_anchor][0])
        return min(marks) if marks else -1

    def sync(self, last: int, hashes: list[bytes], prev_hex: str) -> None:
        """Record where the walk is: ``last`` rows in, the frontier ``hashes`` and chain head ``prev_hex``."""
        self.frontier = Frontier(last, hashes)
        self.last, self.prev_hex = last, prev_hex

    def report(self, checked: int, kind: BreakKind | None, seq: int | None, detail: str) -> TrailReport:
        return TrailReport(kind is None, checked, self.last, self.prev_hex, self.frontier.root().hex(), self.matched,
                           self.covered, kind, seq, detail)  # fmt: skip

    def run(self, it: Iterator[Sequence[Any]], link: ChainLink, encode: Encoder) -> TrailReport:
        sha = hashlib.sha256
        keyed = link.inner is not None
        # Frontier.push inlined on a local list: this loop is the verifier's whole cost (bench/tree.py).
        hashes = list(self.frontier.hashes)
        next_size = self.next_mark()
        exp = self.base + 1
        prev_hex = self.prev_hex
        prev_bytes = bytes.fromhex(prev_hex)
        for r in it:
            try:
                if r[0] != exp or r[16] != prev_hex:
                    raise ValueError
                body = encode(r)
                raw = link.digest(prev_bytes + body) if keyed else sha(prev_bytes + body).digest()
                if raw.hex() != r[17]:
                    raise ValueError
            except (ValueError, TypeError, IndexError):
                self.sync(exp - 1, hashes, prev_hex)
                kind, detail = _classify(r, exp, prev_hex, it, link, encode)
                return self.report(exp - 1 - self.base, kind, exp, detail)
            h = sha(b"\x00" + body).digest()
            n = exp - 1
            while n & 1:
                h = sha(b"\x01" + hashes.pop() + h).digest()
                n >>= 1
            hashes.append(h)
            prev_hex = r[17]
            prev_bytes = raw
            if exp == next_size:
                self.sync(exp, hashes, prev_hex)
                covered = self.covered
                if not self.check_heads(exp):
                    return self.report(exp - self.base, "forged", covered + 1,
                                       f"the tree root at size {exp} differs from the signed checkpoint: "
                                       f"rows after seq {covered} were rewritten")  # fmt: skip
                if not self.check_anchors(exp, prev_hex):
                    return self.report(exp - self.base, "forged", covered + 1,
                                       f"the chain hash at seq {exp} differs from a signed chain checkpoint: "
                                       f"rows after seq {covered} were rewritten")  # fmt: skip
                next_size = self.next_mark()
            exp += 1
        self.sync(exp - 1, hashes, prev_hex)
        if self.next_head < len(self.heads) or self.next_anchor < len(self.anchors):
            largest = max([h.size for h in self.heads] + [seq for seq, _ in self.anchors])
            return self.report(
                exp - 1 - self.base,
                "truncated",
                exp,
                f"the rows end at seq {exp - 1} but a signed checkpoint vouches for seq {largest}",
            )
        return self.report(exp - 1 - self.base, None, None, "")


def _self_consistent(r: Sequence[Any], link: ChainLink, encode: Encoder) -> bool:
    try:
        return bool(link.digest(bytes.fromhex(r[16]) + encode(r)).hex() == r[17])
    except (TypeError, ValueError, IndexError):
        return False


def _classify(
    r: Sequence[Any], exp: int, prev_hex: str, it: Iterator[Sequence[Any]], link: ChainLink, encode: Encoder
) -> tuple[BreakKind, str]:
    """Name the first break the way ``docs/audit-format.md`` section 7 does, one row of look-ahead."""
    nxt = next(it, None)
    try:
        seq, prev = r[0], r[16]
        _ = r[17]
    except (TypeError, IndexError):
        return "modified", f"the row at the position of seq {exp} is malformed"
    if type(seq) is not int:
        return "modified", f"the row at the position of seq {exp} has a seq that is not an integer"
    if seq < exp:
        if seq == exp - 1:
            return "inserted", f"seq {seq} appears twice"
        return "reordered", f"seq {seq} appears after seq {exp - 1}"
    if seq > exp:
        if nxt is not None and _field(nxt, 0) == exp:
            return "reordered", f"seq {seq} appears before seq {exp}"
        return "deleted", f"seq {exp} is missing (the next present is {seq})"
    next_links_back = nxt is not None and _field(nxt, 16) == prev_hex
    if prev == prev_hex:
        if next_links_back:
            return "inserted", f"seq {exp} does not verify and seq {exp + 1} links past it"
        return "modified", f"the hash of seq {exp} does not match its content"
    if next_links_back:
        return "reordered", f"seq {exp} does not link to seq {exp - 1}, but seq {exp + 1} does"
    if _self_consistent(r, link, encode):
        return "inserted", f"seq {exp} does not link to seq {exp - 1} (one of them was rewritten)"
    return "modified", f"seq {exp} neither links to seq {exp - 1} nor matches its content"


def _field(row: Sequence[Any], index: int) -> Any:
    try:
        return row[index]
    except (TypeError, IndexError):
        return None


# --- single proofs -----------------------------------------------------------------------------


def event_leaf(row: Sequence[Any]) -> tuple[int, bytes]:
    """``(leaf index, leaf hash)`` of a stored row: ``(seq - 1, SHA-256(0x00 || canonical bytes))``.

    Raises:
        ValueError: the row cannot be encoded or its seq is not a positive integer.
    """
    seq = row[0]
    if type(seq) is not int or seq < 1:
        raise ValueError(f"seq {seq!r} is not a positive integer")
    try:
        return seq - 1, leaf_hash(canonical_json(row))
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def check_inclusion(checkpoint: SignedCheckpoint, row: Sequence[Any], proof: Sequence[bytes]) -> None:
    """Check that the event ``row`` is in the tree a verified checkpoint signs.

    The leaf commits to every column but ``hash`` (which the next event's ``prev_hash`` commits to).

    Raises:
        ProofError: the proof does not verify, is malformed, or the event is beyond the checkpoint.
    """
    try:
        index, leaf = event_leaf(row)
    except ValueError as exc:
        raise ProofError(f"the event cannot be a leaf: {exc}") from None
    verify_inclusion(leaf, index, checkpoint.size, proof, checkpoint.root)


def check_consistency(trusted: SignedCheckpoint, new: SignedCheckpoint, proof: Sequence[bytes]) -> None:
    """Check that ``new`` extends ``trusted`` (both verified checkpoints of one log).

    Raises:
        ProofError: another origin, a rollback (``new`` is smaller), a fork (same size, another root),
            or a consistency proof that does not verify.
    """
    if trusted.origin != new.origin:
        raise ProofError(f"checkpoints of two logs ({trusted.origin!r}, {new.origin!r})")
    if new.size < trusted.size:
        raise ProofError(f"rollback: size {new.size} is smaller than the trusted size {trusted.size}")
    if new.size == trusted.size and new.root != trusted.root:
        raise ProofError(f"fork: two signed roots for size {new.size}")
    verify_consistency(trusted.size, new.size, trusted.root, new.root, proof)
