"""Signed tree heads of the deployment: made under the chain lock, checked, published outside the database.

A :class:`HeadMaker` signs a C2SP checkpoint (``genesis.audit.note``) for the Merkle tree of the
audit trail and stores it in ``audit_heads`` inside the transaction that holds the chain lock
(``AuditStore.add_head``), so every worker of a deployment sees and extends the same heads: at
most one per tree size (the table's key), and a periodic head only when no worker made one within
the interval and new events exist.

Before signing it checks that the tree extends the latest head it knows, from the database and
from the head log (a consistency proof from the stored nodes): a log must never sign two
inconsistent heads, so a tree rewritten or cut under it is refused (``HeadRefused``, an ERROR log
line) instead of being legitimised by a fresh signature.

Every new head is published, before the transaction commits, to:

* the head log file (``genesis.audit.headlog``: append-only, fsynced, safe with several processes),
* the JSON log stream (one INFO line, ``action`` ``audit.head``),
* the callbacks registered with :meth:`HeadMaker.on_head` (after the commit; e.g. a push topic).

A head that is published and whose transaction then fails is still a true statement about
committed events; a head that could not be written to the head log is not made at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genesis.audit import headlog
from genesis.audit.merkle import ProofError, consistency_proof, root_at, verify_consistency
from genesis.audit.metrics import AUDIT_HEAD_REFUSALS, AUDIT_HEAD_SIZE, AUDIT_HEADS
from genesis.audit.note import (
    NoteError,
    NoteSigner,
    NoteVerifier,
    default_origin,
    open_checkpoint,
    sign_checkpoint,
)
from genesis.audit.store import AuditStore, HeadDraft, StoredHead
from genesis.errors import Conflict, InvalidInput
from genesis.timeutil import now_us

log = logging.getLogger("genesis.audit.heads")

HeadListener = Callable[[StoredHead], None]
"""Called with each new head after it is committed; it must not block (queue the work)."""

REASONS: Final = ("periodic", "startup", "shutdown", "export", "archive-boundary", "on-demand")
_ONLY_WHEN_NEW: Final = ("periodic", "startup", "shutdown")


def log_signer(private_key: Ed25519PrivateKey, origin: str | None = None) -> NoteSigner:
    """The log's note signer: ``origin`` (``GENESIS_AUDIT_LOG_ORIGIN``), by default named after the key."""
    return NoteSigner(origin or default_origin(private_key.public_key()), private_key)


class HeadRefused(Conflict):
    """The tree does not extend a head already signed: the trail was rewritten or cut; no head is signed."""

    code = "audit-head-refused"
    title = "Signed tree head refused"


class HeadMaker:
    """Makes, checks and publishes the signed tree heads of one audit store (thread-safe)."""

    def __init__(
        self,
        store: AuditStore,
        signer: NoteSigner,
        *,
        head_log: Path | None = None,
        interval_seconds: float = 60.0,
        listeners: list[HeadListener] | None = None,
    ) -> None:
        """Args:
        store: the audit store whose tree the heads sign.
        signer: the log's key under its origin (the deployment's one log identity).
        head_log: the head log file (None: publish to the log stream and listeners only).
        interval_seconds: a periodic head is made when the latest is at least this old.
        listeners: callbacks for new heads (shared: callbacks added to the list later are called too).
        """
        self.store = store
        self.signer = signer
        self.head_log = head_log
        self.interval_us = int(interval_seconds * 1_000_000)
        self._listeners = listeners if listeners is not None else []
        self._lock = threading.Lock()
        self._published: StoredHead | None = None  # the largest head this process knows was published
        self._read_log = head_log is None

    @property
    def verifier(self) -> NoteVerifier:
        """The log's public key (its vkey is what verifiers are given out of band)."""
        return self.signer.verifier

    @property
    def origin(self) -> str:
        return self.signer.name

    def on_head(self, callback: HeadListener) -> None:
        """Call ``callback(head)`` for every head this maker commits from now on."""
        self._listeners.append(callback)

    def make(self, reason: str, *, size: int | None = None) -> StoredHead | None:
        """The head of the tree now (or of its first ``size`` leaves), made if none is stored.

        ``periodic`` makes one only when events were appended since the latest head and the
        latest is at least the interval old; ``startup`` and ``shutdown`` only when events were
        appended since the latest head; other reasons always return a head covering the size
        (the stored one when there is one). None: nothing to do.

        Raises:
            InvalidInput: ``size`` exceeds the tree.
            HeadRefused: the tree does not extend the latest known head (logged at ERROR).
            OSError: the head log cannot be written (no head is made).
            Unavailable: the store cannot be reached.
        """
        if reason in _ONLY_WHEN_NEW and size is None and not self._due(reason):
            return None  # checked without the chain lock first: most periodic calls stop here
        with self._lock:
            trusted = self._trusted_from_log()
            stored: StoredHead | None = None

            def decide(draft: HeadDraft) -> StoredHead | None:
                nonlocal stored
                target = draft.size if size is None else size
                if not 0 <= target <= draft.size:
                    raise InvalidInput(f"the audit tree has {draft.size} leaves; no head of size {target}")
                stored = draft.stored(target)
                if stored is not None:
                    return None
                latest = draft.latest
                if reason in _ONLY_WHEN_NEW and (target == 0 or (
                        latest is not None and latest.size >= target)):
                    return None
                if reason == "periodic" and latest is not None and latest.created_at_us > now_us() - self.interval_us:
                    return None  # another worker made one recently: one cadence for the deployment
                root = draft.root if target == draft.size else root_at(draft.nodes, target)
                for known in (latest, trusted):
                    if known is not None:
                        self._check_extends(draft, known, target, root)
                note = sign_checkpoint(self.signer, target, root)
                head = StoredHead(target, root, note, now_us(), reason)
                if self.head_log is not None:
                    headlog.append_note(self.head_log, note)
                return head

            made = self.store.add_head(decide)
            if made is None:
                return stored
            if self._published is None or made.size > self._published.size:
                self._published = made
        self._announce(made)
        return made

    def _due(self, reason: str) -> bool:
        latest = self.store.latest_head()
        top = self.store.head().seq
        if top == 0 or (latest is not None and latest.size >= top):
            return False
        return not (reason == "periodic" and latest is not None and latest.created_at_us > now_us() - self.interval_us)

    def _trusted_from_log(self) -> StoredHead | None:
        """The largest head in the head log (read once; afterwards this process's own are remembered)."""
        if not self._read_log and self.head_log is not None:
            self._read_log = True
            for note in reversed(headlog.read_tail(self.head_log).notes):
                try:
                    head = open_checkpoint(note, self.verifier)
                except NoteError:
                    continue  # another log's or a damaged record: it vouches for nothing here
                if self._published is None or head.size > self._published.size:
                    self._published = StoredHead(head.size, head.root, note, 0, "head-log")
        return self._published

    def _check_extends(self, draft: HeadDraft, known: StoredHead, size: int, root: bytes) -> None:
        """Refuse to sign ``(size, root)`` unless it and ``known`` are one tree (RFC 9162 consistency)."""
        try:
            opened = open_checkpoint(known.note, self.verifier)
        except NoteError as exc:
            self._refuse(f"the latest signed head (size {known.size}) is not this log's: {exc}")
        if (opened.size, opened.root) != (known.size, known.root):
            self._refuse(f"the stored head of size {known.size} does not match its own signed text")
        try:
            if known.size > draft.size:
                raise ProofError(f"the tree has {draft.size} leaves, fewer than the signed head of size {known.size}")
            if known.size <= size:
                proof = consistency_proof(draft.nodes, known.size, size)
                verify_consistency(known.size, size, known.root, root, proof)
            else:
                proof = consistency_proof(draft.nodes, size, known.size)
                verify_consistency(size, known.size, root, known.root, proof)
        except (ProofError, LookupError) as exc:
            self._refuse(f"the audit tree does not extend the signed head of size {known.size}: {exc}")

    def _refuse(self, why: str) -> None:
        AUDIT_HEAD_REFUSALS.inc()
        log.error("REFUSING TO SIGN A TREE HEAD: %s (the trail was rewritten or cut; run genesis audit verify)", why)
        raise HeadRefused(why)

    def _announce(self, head: StoredHead) -> None:
        AUDIT_HEADS.labels(head.reason).inc()
        AUDIT_HEAD_SIZE.set(float(head.size))
        log.info(
            "signed tree head: %d events", head.size,
            extra={"action": "audit.head", "origin": self.origin, "tree_size": head.size, "root": head.root.hex(),
                   "reason": head.reason, "note": head.note},
        )  # fmt: skip
        for callback in list(self._listeners):
            try:
                callback(head)
            except Exception:  # one failing listener must not stop the others or the writer
                log.exception("a signed-tree-head listener failed")
