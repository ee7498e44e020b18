"""Publishing what was committed: notices onto the hub (streams), and the audit trail's feed.

Producers write their webhook deliveries in their own transaction (``storage.outbox``) and call
:meth:`Publisher.committed` after it commits: the notices go onto the hub, the relay is woken,
and an endpoint the transaction disabled for a full outbox gets its audit event. Publishing
is best effort: a stream is a live view (a failure is logged and counted, the request that
produced the notice stands); the outbox and the trail are the record.

The audit writer commits on its own thread; :class:`AuditFeed` takes its committed batches
(``AuditWriter`` commit listeners) and publishes them on ``audit`` and ``audit.verify`` in
commit order from the event loop, through a bounded queue that never blocks the writer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Final

from genesis.audit import AuditEvent, AuditRecorder, new_event
from genesis.errors import GenesisError
from genesis.push import Hub
from genesis.push.notice import Notice
from genesis.services.announce import audit_notices, head_notice
from genesis.storage.outbox import OUTBOX_FULL
from genesis.storage.protocols import Outboxed
from genesis.storage.webhooks import SqlWebhookStore
from genesis.timeutil import now_us

log = logging.getLogger("genesis.push")

AUDIT_QUEUE_BATCHES: Final = 1024


class Publisher:
    """The producers' side of push in one process.

    Args:
        hub: this worker's hub. recorder: for the audit events of endpoints disabled by a full outbox.
        webhooks: the webhook store (outbox for notices made outside a producing transaction).
        outbox_limit: ``GENESIS_WEBHOOK_OUTBOX_MAX_PENDING``.
    """

    def __init__(self, hub: Hub, *, recorder: AuditRecorder, webhooks: SqlWebhookStore, outbox_limit: int) -> None:
        self.hub = hub
        self.recorder = recorder
        self.webhooks = webhooks
        self.outbox_limit = outbox_limit
        self.failures = 0
        self._wake: list[Callable[[], None]] = []

    def on_outbox(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this process wrote webhook deliveries (the relay's wake-up)."""
        self._wake.append(callback)

    async def committed(self, notices: Sequence[Notice], outboxed: Outboxed | None = None) -> int:
        """After the producing transaction committed: publish ``notices``, wake the relay; returns how many went out."""
        if outboxed is not None:
            self.outboxed(outboxed)
        return await self.publish(notices)

    async def publish(self, notices: Sequence[Notice]) -> int:
        published = 0
        for notice in notices:
            try:
                # The envelope's time is the publication's (right after the commit); the event's own time is in data.
                await self.hub.publish(notice.topic, notice.type, notice.data, owner=notice.owner)
            except GenesisError as exc:  # Redis away, or a bug in a producer: the stream misses it, loudly
                self.failures += 1
                log.warning("push: could not publish on %s: %s", notice.topic, exc.message)
            else:
                published += 1
        return published

    def outboxed_wake(self) -> None:
        """Wake the relay: deliveries are due now (written, re-enabled or redelivered)."""
        for wake in self._wake:
            wake()

    def outboxed(self, outboxed: Outboxed) -> None:
        if outboxed.rows:
            self.outboxed_wake()
        for endpoint_id in outboxed.disabled:
            log.error("webhook endpoint %s disabled: its outbox is full (%d undelivered)", endpoint_id,
                      self.outbox_limit)
            self.recorder.submit_quietly([endpoint_disabled_event(endpoint_id, OUTBOX_FULL,
                                                                  f"more than {self.outbox_limit} undelivered")],
                                         what="a webhook endpoint disabled")

    async def publish_head(self, *, note: str, size: int, root: str) -> None:
        """Announce a signed tree head on ``audit.heads``: its webhook deliveries, then the streams."""
        notice = head_notice(note=note, size=size, root=root)
        try:
            outboxed = await self.webhooks.add_notices([notice], limit=self.outbox_limit, now_us=now_us())
        except Exception as exc:  # the database is away: streams still get the head
            log.error("could not write webhook deliveries of a signed head: %s", type(exc).__name__)
            outboxed = None
        await self.committed([notice], outboxed)


def endpoint_disabled_event(endpoint_id: str, reason: str, detail: str) -> AuditEvent:
    """The audit event of an endpoint the system disabled (full outbox, persistent failure, 410 Gone)."""
    return new_event("webhook.endpoint.disabled", outcome="failure", level="WARNING",
                     message=f"webhook endpoint {endpoint_id} disabled: {reason} ({detail})",
                     metadata={"endpoint_id": endpoint_id, "reason": reason})


class AuditFeed:
    """Committed audit events onto ``audit`` / ``audit.verify``, in commit order, never blocking the writer."""

    def __init__(self, publisher: Publisher, *, max_batches: int = AUDIT_QUEUE_BATCHES) -> None:
        self._publisher = publisher
        self._max = max_batches
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Sequence[AuditEvent]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._heads: set[concurrent.futures.Future[None]] = set()
        self.dropped = 0

    def start(self) -> None:
        """Start publishing (from the event loop that serves the streams)."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="genesis-audit-feed")

    async def close(self, *, finish_seconds: float = 10.0) -> None:
        """Stop: heads already handed over are published (their webhook deliveries written) first."""
        task, self._task, self._loop = self._task, None, None
        heads = [asyncio.wrap_future(f) for f in list(self._heads)]  # list(): one atomic copy
        if heads:  # the shutdown checkpoint's head is usually among them; its database write must end before
            await asyncio.wait(heads, timeout=finish_seconds)  # the engine is disposed
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def committed(self, events: Sequence[AuditEvent]) -> None:
        """The writer's commit listener: called on the writer's thread, returns at once."""
        loop = self._loop
        if loop is None or not events:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._put, list(events))

    def on_head(self, note: str, size: int, root: str) -> None:
        """A head maker's ``on_head`` callback (any thread): publish the signed tree head."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            future = asyncio.run_coroutine_threadsafe(self._publisher.publish_head(note=note, size=size, root=root),
                                                      loop)
            self._heads.add(future)
            future.add_done_callback(self._heads.discard)

    def _put(self, events: Sequence[AuditEvent]) -> None:
        assert self._queue is not None
        if self._queue.qsize() >= self._max:  # publishing is stuck (Redis away): streams lose these, visibly
            self.dropped += len(events)
            log.warning("push: %d audit events not published on streams (the feed is %d batches behind)",
                        len(events), self._max)
            return
        self._queue.put_nowait(events)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            events = await self._queue.get()
            try:
                await self._publisher.publish([n for event in events for n in audit_notices(event)])
            except Exception:  # a bug must not end the feed
                log.exception("push: audit feed error")
