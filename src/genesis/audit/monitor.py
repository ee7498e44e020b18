"""Continuous self-verification: the trail is re-verified on a schedule and its state exported as metrics.

``genesis audit verify`` answers when someone asks; ``ChainMonitor`` asks all the time, so a
rewritten, deleted or truncated event shows up on a dashboard and in the logs within one interval
instead of at the next audit. A check is incremental: the first verifies from the chain's
boundary (genesis or the last archive) to the head, later ones only the events appended since
the last verified one, continuing from its hash and the tree's frontier there, and hold them
against the signed tree heads (and old chain checkpoints) from there on. An incremental check
cannot see an edit to what it already verified, so the caller asks for a full check now and then
(``check(full=True)``: the runtime does hourly).

Metrics: ``genesis_audit_chain_verified`` (1 ok, 0 broken), ``genesis_audit_chain_verified_seq``,
``genesis_audit_chain_last_checkpoint_age_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from genesis.audit.chain import VerifyReport
from genesis.audit.events import EventRow
from genesis.audit.metrics import AUDIT_CHAIN_VERIFIED, AUDIT_CHECKPOINT_AGE, AUDIT_VERIFIED_SEQ
from genesis.audit.store import AuditStore
from genesis.audit.trail import TrustedKeys, verify_store


@dataclass(frozen=True, slots=True)
class ChainState:
    """What the last check found."""

    ok: bool
    verified_seq: int
    checked: int
    report: VerifyReport | None = None

    @property
    def problem(self) -> str | None:
        """One line naming the break, or None when the chain is intact."""
        if self.ok or self.report is None:
            return None
        return f"{self.report.kind} at seq {self.report.first_bad_seq}: {self.report.detail}".rstrip(": ")


MONITOR_CHUNK_ROWS = 200


def _gently(rows: Iterable[EventRow], every: int = 200, pause: float = 0.002) -> Iterator[EventRow]:
    """Pass ``rows`` through, sleeping briefly every ``every`` rows.

    The check runs in a thread of a serving worker: without pauses it would hold the GIL for
    whole 5 ms switch intervals and add that to the latency of requests served meanwhile. With
    them it takes about a quarter of one core (a full pass of 1,000,000 events: ~15 s).
    """
    for i, row in enumerate(rows, 1):
        yield row
        if i % every == 0:
            time.sleep(pause)


class ChainMonitor:
    """Incremental verification of one store's chain; thread-safe, one check at a time."""

    def __init__(self, store: AuditStore, *, hmac_key: bytes | str | None = None,
                 keys: TrustedKeys | None = None) -> None:
        self.store = store
        self.hmac_key = hmac_key
        self.keys = keys
        self._lock = threading.Lock()
        self._seq = -1  # nothing verified yet
        self._hash = ""
        self.state: ChainState | None = None

    def check(self, *, full: bool = False) -> ChainState:
        """Verify what was appended since the last check (everything the first time, or when ``full``)."""
        with self._lock:
            boundary = self.store.boundary()
            if full or self._seq < boundary.seq:  # first run, or history archived past what we had verified
                self._seq, self._hash = boundary.seq, boundary.hash
            head = self.store.head()
            if head.seq < self._seq:
                report = VerifyReport(False, 0, head.seq, head.hash, 0, self._seq, self.keys is not None,
                                      "truncated", head.seq + 1,
                                      f"the head went back from seq {self._seq} to {head.seq}")
                return self._record(ChainState(False, self._seq, 0, report))
            report = verify_store(
                self.store, keys=self.keys, hmac_key=self.hmac_key, start_seq=self._seq + 1,
                # Small chunks: a serving worker should not hold thousands of rows for a background check.
                pace=_gently, chunk=MONITOR_CHUNK_ROWS,
            )  # fmt: skip
            if report.ok:
                self._seq, self._hash = report.last_seq, report.head_hash
            self._checkpoint_age()
            return self._record(ChainState(report.ok, self._seq, report.events_checked, report))

    def _record(self, state: ChainState) -> ChainState:
        self.state = state
        AUDIT_CHAIN_VERIFIED.set(1.0 if state.ok else 0.0)
        AUDIT_VERIFIED_SEQ.set(float(state.verified_seq))
        return state

    def _checkpoint_age(self) -> None:
        head = self.store.latest_head()
        if head is not None:
            newest = head.created_at_us
        else:  # a trail from before signed tree heads: its chain checkpoints
            latest = self.store.checkpoints(min_seq=self._seq) or self.store.checkpoints()
            if not latest:
                return
            newest = max(cp.created_at_us for cp in latest)
        AUDIT_CHECKPOINT_AGE.set(max(0.0, time.time() - newest / 1e6))
