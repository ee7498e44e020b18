"""Rate-limit refusals in the audit trail: the first of each window in full, the rest as one count.

Every 429 used to cost a durable audit row, so a client hammering a limit turned each refused
request into a committed write: the limiter bounded the work the API did, not the work the audit
trail did. ``RefusalWindows`` keeps one window per (actor, source, route): the first refusal of a
window is audited like any request (and waited for); later ones in the same window are only
counted, and when the window closes its count becomes one summary event. So a flood costs one
row per key per window, and the trail still says who was refused, where, how often and when.

Pure bookkeeping on a monotonic clock supplied by the caller; no I/O, no threads.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from genesis.audit.events import AuditEvent

RefusalKey = tuple[str, str, str]
MAX_OPEN_WINDOWS: Final = 10_000


@dataclass(slots=True)
class _Window:
    opened: float
    first: AuditEvent
    suppressed: int = 0
    first_us: int = 0
    last_us: int = 0


@dataclass(frozen=True, slots=True)
class RefusalSummary:
    """Refusals of one key that were counted, not recorded one by one; ``first`` opened the window."""

    key: RefusalKey
    count: int
    first_us: int
    last_us: int
    window_seconds: float
    first: AuditEvent


class RefusalWindows:
    """Which refusals to audit in full, and the counts of those that were not."""

    def __init__(self, window_seconds: float = 60.0, *, max_open: int = MAX_OPEN_WINDOWS) -> None:
        self.window_seconds = window_seconds
        self.max_open = max_open
        self._open: OrderedDict[RefusalKey, _Window] = OrderedDict()
        self._closed: list[RefusalSummary] = []

    def admit(self, key: RefusalKey, event: AuditEvent, *, now: float, now_us: int) -> bool:
        """True when this refusal opens a window (audit it in full); False when it was only counted."""
        if self.window_seconds <= 0:
            return True
        window = self._open.get(key)
        if window is not None and now - window.opened < self.window_seconds:
            if window.suppressed == 0:
                window.first_us = now_us
            window.suppressed += 1
            window.last_us = now_us
            return False
        if window is not None and window.suppressed:  # closed by this refusal: its count is due
            self._closed.append(self._summary(key, window))
        self._open[key] = _Window(opened=now, first=event)
        self._open.move_to_end(key)
        return True

    def forget(self, key: RefusalKey) -> None:
        """Close ``key``'s window without a summary: its first refusal could not be recorded."""
        window = self._open.pop(key, None)
        if window is not None and window.suppressed:
            self._closed.append(self._summary(key, window))

    def due(self, *, now: float) -> list[RefusalSummary]:
        """Summaries of the windows that have closed (and of the oldest ones past ``max_open``)."""
        out, self._closed = self._closed, []
        while self._open:
            key, window = next(iter(self._open.items()))
            if now - window.opened < self.window_seconds and len(self._open) <= self.max_open:
                break  # windows are kept in opening order: the rest are younger
            del self._open[key]
            if window.suppressed:
                out.append(self._summary(key, window))
        return out

    def drain(self) -> list[RefusalSummary]:
        """Every pending count, closing all windows (at shutdown)."""
        out = [*self._closed, *(self._summary(key, w) for key, w in self._open.items() if w.suppressed)]
        self._open.clear()
        self._closed = []
        return out

    def __len__(self) -> int:
        return len(self._open)

    def _summary(self, key: RefusalKey, window: _Window) -> RefusalSummary:
        return RefusalSummary(key, window.suppressed, window.first_us, window.last_us, self.window_seconds,
                              window.first)
