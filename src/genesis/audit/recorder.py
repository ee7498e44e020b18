"""``AuditRecorder``: the one way an event enters the trail.

Whatever happened - a request, a login, a refusal, an administrative action, a CLI command, a
``log_action`` call - reaches the writer through one recorder. It is injected where it is used
(the request middleware, the intent dependency, the CLI, ``genesis.audit.configure``) instead of
being found through module globals, and it owns the two policies that sit between "something
happened" and "the writer commits it":

* **durability**: :meth:`record` returns only once the event is committed and raises
  :class:`~genesis.errors.Unavailable` when it could not be, so a caller can refuse to acknowledge
  what was not recorded; :meth:`submit` queues without waiting, for events whose loss must not
  fail anything (summaries, degradation notices);
* **refusal windows** (``genesis.audit.refusals``): a flood of rate-limit refusals costs one
  durable event per actor, address and route per window plus one summary, not one write each.

The intent/outcome pairing is the caller's sequence of two :meth:`record` calls (``started``
before a state change, the outcome after); the recorder makes both durable the same way.

When the writer is not running (the audit store was unreachable at start), ``record`` asks the
``reconnect`` callable supplied by the composition root - at most once per ``retry_seconds`` - and
refuses with ``Unavailable`` meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from genesis.audit.events import AuditEvent, new_event
from genesis.audit.refusals import RefusalKey, RefusalSummary, RefusalWindows
from genesis.audit.writer import AuditWriter, Ticket
from genesis.errors import Unavailable
from genesis.timeutil import now_us

log = logging.getLogger("genesis.audit.recorder")

Reconnect = Callable[[], Awaitable[AuditWriter | None]]


class AuditRecorder:
    """Turns what happened into committed audit events; see the module docstring."""

    def __init__(
        self,
        writer: AuditWriter | None = None,
        *,
        reconnect: Reconnect | None = None,
        refusal_window_seconds: float = 60.0,
        retry_seconds: float = 2.0,
    ) -> None:
        self._writer = writer
        self._reconnect = reconnect
        self._retry_seconds = retry_seconds
        self._retry_at = 0.0
        self._last: Ticket | None = None
        self.refusals = RefusalWindows(refusal_window_seconds)

    @property
    def writer(self) -> AuditWriter | None:
        """The running writer, or None while the audit store is unreachable."""
        return self._writer

    def attach(self, writer: AuditWriter | None) -> None:
        """Use ``writer`` from now on (None: the trail is down until ``reconnect`` succeeds)."""
        self._writer = writer

    async def ready(self) -> bool:
        """Whether a writer runs, trying to reconnect (at most once per retry interval) if not."""
        return await self._current_writer() is not None

    async def _current_writer(self) -> AuditWriter | None:
        if self._writer is not None or self._reconnect is None:
            return self._writer
        now = time.monotonic()
        if now < self._retry_at:
            return None
        self._retry_at = now + self._retry_seconds
        self._writer = await self._reconnect()
        return self._writer

    # --- recording ---------------------------------------------------------------------
    async def record(self, event: AuditEvent) -> AuditEvent:
        """Commit ``event`` durably and return it with its seq and hash.

        Raises:
            Unavailable: the trail is not running or the commit failed (nothing may be acknowledged).
        """
        writer = await self._current_writer()
        if writer is None:
            raise Unavailable("the audit trail is not running", component="audit")
        try:
            return await writer.write_async(event)
        except Unavailable:
            raise
        except Exception as exc:  # the writer refused the event (closed, unencodable): never acknowledge it
            raise Unavailable("the audit trail could not record the event", component="audit") from exc

    def record_blocking(self, event: AuditEvent, *, timeout: float = 30.0) -> AuditEvent:
        """Commit ``event`` from synchronous code (the CLI, ``log_action(wait=True)``).

        Raises:
            Unavailable: the trail is not running, the commit failed or ``timeout`` passed.
        """
        return self.submit(event).wait(timeout)

    def submit(self, event: AuditEvent) -> Ticket:
        """Queue ``event`` without waiting for its commit.

        Raises:
            Unavailable: the trail is not running.
        """
        writer = self._writer
        if writer is None:
            raise Unavailable("the audit trail is not running", component="audit")
        self._last = ticket = writer.submit(event)
        return ticket

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every event submitted so far has been committed or refused (batches commit in order)."""
        last = self._last
        if last is not None and not last.done():
            with contextlib.suppress(Unavailable):  # its submitter hears of a failure; a reader wants an empty queue
                last.wait(timeout)

    def submit_quietly(self, events: Iterable[AuditEvent], *, what: str) -> None:
        """Queue events whose loss must fail nothing; a failure is logged, never raised."""
        for event in events:
            try:
                self.submit(event)
            except Exception as exc:
                log.error("could not record %s (%s): %s", what, event.action, type(exc).__name__)

    # --- rate-limit refusals -------------------------------------------------------------
    async def record_refusal(self, event: AuditEvent) -> None:
        """Record a 429: the first of its window durably, later ones only counted.

        Raises:
            Unavailable: a refusal to be recorded in full could not be committed.
        """
        self.flush_refusals()
        key: RefusalKey = (event.actor, event.source_ip or "", event.action or event.path or "")
        if self.refusals.admit(key, event, now=time.monotonic(), now_us=now_us()):
            try:
                await self.record(event)
            except BaseException:
                self.refusals.forget(key)  # the next refusal is recorded in full again
                raise

    def flush_refusals(self, *, everything: bool = False) -> None:
        """Queue the summary events of the refusal windows that have closed (all of them at shutdown)."""
        due = self.refusals.drain() if everything else self.refusals.due(now=time.monotonic())
        self.submit_quietly((summary_event(s) for s in due), what="a rate-limit summary")


def summary_event(summary: RefusalSummary) -> AuditEvent:
    """The ``ratelimit.refused.summary`` event of one closed refusal window."""
    first = summary.first
    actor, source, route = summary.key
    return new_event(
        "ratelimit.refused.summary", actor=first.actor, outcome="denied", level=first.level, status=429,
        source_ip=first.source_ip, user_agent=first.user_agent, method=first.method, path=first.path,
        message=f"{summary.count} more rate-limited requests by {actor} from {source or 'unknown'} on {route} "
                f"within {summary.window_seconds:g} s",
        metadata={**first.metadata, "refused": summary.count, "first_us": summary.first_us,
                  "last_us": summary.last_us, "window_seconds": summary.window_seconds},
        redact=False,  # the first event was redacted when it was built
    )
