"""Group-commit audit writer: one daemon thread, many waiting callers.

Callers ``submit`` events and get a :class:`Ticket`; the thread takes everything
queued since its last commit (at most ``batch_max``) as one batch, appends it in a
single durable transaction, then releases every waiter of the batch at once. While one batch
commits the next accumulates, so no artificial delay is needed. Nothing is
acknowledged before its batch is committed; when the store fails, each waiter
of that batch gets :class:`~genesis.errors.Unavailable` and the thread carries on.

With a :class:`~genesis.audit.heads.HeadMaker`, the thread also makes the signed tree heads of
the trail: at start and at close when events were appended since the latest head, and on a
schedule (the maker keeps one cadence for every writer of the deployment).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from genesis.audit.chain import PendingLink, prepare
from genesis.audit.events import AuditEvent
from genesis.audit.heads import HeadMaker, HeadRefused
from genesis.audit.metrics import (
    AUDIT_BATCH_SIZE,
    AUDIT_COMMIT_SECONDS,
    AUDIT_FAILURES,
    AUDIT_HEAD_SEQ,
    AUDIT_QUEUE_DEPTH,
)
from genesis.audit.store import AuditStore
from genesis.errors import Unavailable

log = logging.getLogger("genesis.audit.writer")
CommitListener = Callable[[Sequence[AuditEvent]], None]
"""Called on the writer's thread with each batch's committed events, after their waiters are released:
it must return at once (hand the events to another thread or loop), never block or raise."""
_HEAD_RETRY_SECONDS = 5.0
_HEAD_CHECKS_PER_INTERVAL = 4  # a worker looks this often per interval; the maker decides whether one is due


class _Batch:
    """The fate of every event submitted between two drains."""

    __slots__ = ("_async", "_finished", "_lock", "done", "errors", "events")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.events: list[AuditEvent | None] = []
        self.errors: list[tuple[int, int, BaseException]] = []
        self._lock = threading.Lock()
        self._finished = False
        self._async: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[AuditEvent], int]]] = {}

    def result(self, index: int) -> AuditEvent:
        for start, end, exc in self.errors:
            if start <= index < end:
                raise Unavailable("the audit trail could not record the event", component="audit") from exc
        event = self.events[index]
        assert event is not None
        return event

    def finish(self) -> None:
        self.done.set()
        with self._lock:
            self._finished = True
            waiters, self._async = self._async, {}
        for loop, futures in waiters.items():
            # One wake-up per event loop for the whole batch; the loop may be closed by now.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._resolve, futures)

    def add_async(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[AuditEvent], index: int) -> None:
        with self._lock:
            if not self._finished:
                self._async.setdefault(loop, []).append((future, index))
                return
        self._resolve([(future, index)])

    def _resolve(self, futures: list[tuple[asyncio.Future[AuditEvent], int]]) -> None:
        for future, index in futures:
            if future.done():
                continue
            try:
                future.set_result(self.result(index))
            except Unavailable as exc:
                future.set_exception(exc)


class Ticket:
    """Handle on one submitted event; resolved when its batch commits or fails."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        return self._batch.done.is_set()

    def wait(self, timeout: float | None = None) -> AuditEvent:
        """The committed event (with seq and hash).

        Raises:
            Unavailable: the batch failed, or ``timeout`` seconds passed (outcome unknown).
        """
        if not self._batch.done.wait(timeout):
            raise Unavailable("timed out waiting for the audit trail", component="audit", details={"timeout": True})
        return self._batch.result(self._index)


class AuditWriter:
    """The single writer thread of one process; several processes may each run one."""

    def __init__(
        self,
        store: AuditStore,
        *,
        batch_max: int = 2000,
        heads: HeadMaker | None = None,
        head_interval: float = 60.0,
        name: str = "genesis-audit-writer",
        listeners: Sequence[CommitListener] = (),
    ) -> None:
        self.store = store
        self.listeners = listeners  # read at each commit: a list the owner appends to later is honoured
        self.batch_max = max(1, batch_max)
        self.heads = heads
        self.head_check_seconds = max(0.05, head_interval / _HEAD_CHECKS_PER_INTERVAL)
        # A plain lock around a few list operations and an Event for wake-ups, set
        # outside it: with a Condition, submitters and the writer convoyed on the
        # GIL (4 submitting threads measured ~200 us per submit).
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: list[PendingLink] = []
        self._batch = _Batch()
        self._ready: collections.deque[tuple[list[PendingLink], _Batch]] = collections.deque()
        self._in_flight = 0
        self._closing = False
        self._closed = False
        self._failing = False
        self._next_head = 0.0 if heads is not None else float("inf")
        ref = weakref.ref(self)
        AUDIT_QUEUE_DEPTH.set_function(lambda: float(w.queue_depth()) if (w := ref()) is not None else 0.0)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- callers -------------------------------------------------------------
    def submit(self, event: AuditEvent) -> Ticket:
        """Queue ``event`` for the next batch; cheap and never blocks on I/O.

        Raises:
            Unavailable: the writer is closed.
        """
        link = prepare(event)  # encoding work here, off the writer's critical path
        with self._lock:
            if self._closing:
                raise Unavailable("the audit writer is closed", component="audit")
            pending, batch = self._pending, self._batch
            index = len(pending)
            pending.append(link)
            if index + 1 >= self.batch_max:  # full: hand it over whole, start the next one
                self._ready.append((pending, batch))
                self._pending, self._batch = [], _Batch()
        if not self._wake.is_set():
            self._wake.set()
        return Ticket(batch, index)

    def write(self, event: AuditEvent, timeout: float | None = 30.0) -> AuditEvent:
        """Submit and wait until the event is durably committed."""
        return self.submit(event).wait(timeout)

    async def write_async(self, event: AuditEvent) -> AuditEvent:
        """Submit and await the commit without blocking the event loop."""
        ticket = self.submit(event)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditEvent] = loop.create_future()
        ticket._batch.add_async(loop, future, ticket._index)
        return await future

    def queue_depth(self) -> int:
        return len(self._pending) + sum(len(p) for p, _ in list(self._ready)) + self._in_flight

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is queued, make a shutdown head (when events are not yet covered) and stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        self._closed = True

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the writer thread ---------------------------------------------------
    def _run(self) -> None:
        while True:
            if not (self._ready or self._pending or self._closing):
                delay = self._next_head - time.monotonic()
                if delay > 0:
                    self._wake.wait(min(delay, 3600.0))
            self._wake.clear()  # whatever is submitted from here on sets it again
            with self._lock:
                if self._ready:
                    pending, batch = self._ready.popleft()
                else:
                    pending, batch = self._pending, self._batch
                    if pending:
                        self._pending, self._batch = [], _Batch()
                self._in_flight = len(pending)
                stop = self._closing and not pending
            try:
                if pending:
                    self._commit(pending, batch)
                if stop:
                    self._head("shutdown")
                    return
                if time.monotonic() >= self._next_head:
                    self._head("startup" if self._next_head == 0.0 else "periodic")
            except Exception:  # never let the thread die; callers depend on it
                log.exception("audit writer loop error")

    def _commit(self, pending: Sequence[PendingLink], batch: _Batch) -> None:
        batch.events = [None] * len(pending)
        try:
            for start in range(0, len(pending), self.batch_max):
                chunk = pending[start : start + self.batch_max]
                began = time.perf_counter()
                try:
                    committed = self.store.append(chunk)
                except Exception as exc:
                    batch.errors.append((start, start + len(chunk), exc))
                    AUDIT_FAILURES.inc(len(chunk))
                    if not self._failing:
                        self._failing = True
                        log.error("audit store refused a batch of %d events: %r", len(chunk), exc)
                    continue
                AUDIT_COMMIT_SECONDS.observe(time.perf_counter() - began)
                AUDIT_BATCH_SIZE.observe(len(chunk))
                batch.events[start : start + len(chunk)] = committed
                if committed:
                    AUDIT_HEAD_SEQ.set(max(e.seq for e in committed))
                if self._failing:
                    self._failing = False
                    log.warning("audit store recovered")
        finally:
            self._in_flight = 0
            batch.finish()
        if self.listeners:
            self._announce([e for e in batch.events if e is not None])

    def _announce(self, committed: list[AuditEvent]) -> None:
        for listener in self.listeners:
            try:
                listener(committed)
            except Exception:  # a listener's bug must not stop the trail
                log.exception("audit commit listener failed")

    def _head(self, reason: str) -> None:
        if self.heads is None:
            return
        try:
            self.heads.make(reason)
        except Exception as exc:  # HeadRefused is logged at ERROR by the maker; anything else here
            if not isinstance(exc, HeadRefused):
                log.error("signed tree head (%s) failed: %r", reason, exc)
            self._next_head = time.monotonic() + max(self.head_check_seconds, _HEAD_RETRY_SECONDS)
            return
        self._next_head = time.monotonic() + self.head_check_seconds
