"""The webhook relay: sends the outbox, in order per endpoint, with retries for a day, then disables.

Each round leases endpoints with work (``storage.webhooks``), turns new audit events into
deliveries for endpoints that follow the audit topics (the trail is their outbox: each endpoint
keeps a cursor over audit seq), then sends each leased endpoint's pending deliveries oldest
first. A delivery that fails is retried per ``push.retry`` (about 5 s, 5 min, 30 min, ... 24 h,
jittered) and holds back the endpoint's later deliveries meanwhile (``paused_until_us``), so a
receiver gets them in order and a dead receiver is not hammered. After the last retry the
delivery has failed and the endpoint is disabled with an audit event (``410 Gone`` disables at
once); its pending deliveries wait for it to be enabled again, or are redelivered by hand.

One relay per deployment is enough, and several are safe: on PostgreSQL every worker runs one
and they share endpoints through ``FOR UPDATE SKIP LOCKED`` leases; on SQLite one process per
data directory runs it (:func:`single_relay_lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
from pathlib import Path
from typing import IO, Final

from genesis.audit import AuditRecorder
from genesis.push.notice import deliverable
from genesis.push.retry import RetrySchedule, Verdict
from genesis.services.announce import audit_notices
from genesis.services.push import endpoint_disabled_event
from genesis.services.tasks import uninterrupted
from genesis.services.webhook_sender import WebhookSender
from genesis.storage.outbox import OUTBOX_FULL
from genesis.storage.webhooks import AttemptRecord, DeliveryRecord, EndpointRecord, SqlWebhookStore
from genesis.timeutil import now_us

log = logging.getLogger("genesis.webhooks")

LEASE_SECONDS: Final = 60
AUDIT_BATCH: Final = 500
RECORD_BATCH: Final = 50
RECORD_SECONDS: Final = 0.5


def single_relay_lock(path: Path) -> IO[bytes] | None:
    """An exclusive lock on ``path`` held while the returned file is open (None: another process holds it)."""
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


class WebhookRelay:
    """Sends due deliveries; see the module docstring."""

    def __init__(
        self, *, store: SqlWebhookStore, sender: WebhookSender, recorder: AuditRecorder, outbox_limit: int,
        poll_seconds: float = 1.0, schedule: RetrySchedule | None = None, endpoints_per_round: int = 20,
        deliveries_per_endpoint: int = 100,
    ) -> None:
        self.store = store
        self.sender = sender
        self.recorder = recorder
        self.outbox_limit = outbox_limit
        self.poll_seconds = poll_seconds
        self.schedule = schedule or RetrySchedule()
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.endpoints_per_round = endpoints_per_round
        self.deliveries_per_endpoint = deliveries_per_endpoint
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for work now (this process just wrote deliveries)."""
        self._wake.set()

    async def run(self) -> None:
        """Rounds forever, every ``poll_seconds`` or sooner when woken."""
        while True:
            try:
                busy = await uninterrupted(self.round())  # a shutdown waits for the round to end
            except Exception as exc:  # the database is away: try again next round
                log.warning("webhook relay round failed: %s", type(exc).__name__)
                busy = 0
            if busy:
                continue  # more may be due right away
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def round(self) -> int:
        """One pass: lease endpoints with work and serve them concurrently; returns how many were leased."""
        endpoints = await self.store.lease_endpoints(self.owner, now_us=now_us(), lease_us=LEASE_SECONDS * 1_000_000,
                                                     limit=self.endpoints_per_round)
        await asyncio.gather(*(self._serve(e) for e in endpoints))
        return len(endpoints)

    async def _serve(self, endpoint: EndpointRecord) -> None:
        paused = endpoint.paused_until_us
        try:
            follows_audit = any(t.startswith("audit") for t in endpoint.topics)
            if follows_audit and not await self._materialize(endpoint):
                return
            if paused is None or paused <= now_us():
                paused = await self._send_pending(endpoint)
        except Exception as exc:
            log.warning("webhook relay: endpoint %s: %s", endpoint.id, type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await self.store.release(endpoint.id, self.owner, paused_until_us=paused)

    async def _materialize(self, endpoint: EndpointRecord) -> bool:
        """Deliveries for the audit events after the endpoint's cursor; False when the endpoint was disabled."""
        cursor = endpoint.audit_cursor
        while True:
            events = await self.store.audit_after(cursor, limit=AUDIT_BATCH)
            if not events:
                return True
            notices = [n for e in events for n in audit_notices(e) if deliverable(endpoint, endpoint.topics, n)]
            new_cursor = events[-1].seq
            _, disabled = await self.store.advance_audit(endpoint.id, old_cursor=cursor, new_cursor=new_cursor,
                                                         notices=notices, limit=self.outbox_limit, now_us=now_us())
            if disabled:
                self._disabled(endpoint.id, OUTBOX_FULL, f"more than {self.outbox_limit} undelivered")
                return False
            cursor = new_cursor
            if len(events) < AUDIT_BATCH:
                return True

    async def _send_pending(self, endpoint: EndpointRecord) -> int | None:
        """Send pending deliveries in order; the time the endpoint waits for afterwards (None: not held back).

        Successful attempts are recorded in batches (one transaction per ``RECORD_BATCH``, at most
        ``RECORD_SECONDS`` late): a commit per delivery would cap a receiver at the database's fsync rate. A
        crash before such a batch commits sends those deliveries again: at least once, same ``webhook-id``.
        """
        lease_end = now_us() + LEASE_SECONDS * 1_000_000
        done: list[tuple[DeliveryRecord, AttemptRecord, str, int]] = []
        flushed = now_us()
        try:
            for delivery in await self.store.pending(endpoint.id, limit=self.deliveries_per_endpoint):
                now = now_us()
                if delivery.next_attempt_at_us > now:
                    return delivery.next_attempt_at_us  # the head of the line is waiting for its retry
                if lease_end - now < 30 * 1_000_000:  # room for one more attempt (15 s at most) and its bookkeeping
                    lease_end = now + LEASE_SECONDS * 1_000_000
                    if not await self.store.renew_lease(endpoint.id, self.owner, until_us=lease_end):
                        return None  # lost the lease (deleted or disabled meanwhile)
                began = now_us()
                result = await self.sender.send(url=endpoint.url, msg_id=delivery.msg_id,
                                                body=delivery.body.encode(), secrets=endpoint.secrets(began))
                attempt = AttemptRecord(began, str(result.verdict), result.status, result.duration_ms, result.error,
                                        result.detail, result.excerpt)
                if result.verdict is Verdict.DELIVERED:
                    done.append((delivery, attempt, "delivered", began))
                    if len(done) >= RECORD_BATCH or began - flushed >= RECORD_SECONDS * 1_000_000:
                        await self.store.record_attempts(done)
                        done, flushed = [], now_us()
                    continue
                await self.store.record_attempts(done)
                done = []
                return await self._failed(endpoint, delivery, attempt, result.verdict, result.retry_after)
            return None
        finally:
            if done:
                await self.store.record_attempts(done)

    async def _failed(
        self, endpoint: EndpointRecord, delivery: DeliveryRecord, attempt: AttemptRecord, verdict: Verdict,
        retry_after: float | None,
    ) -> int | None:
        """Record a failed attempt; when the endpoint may try again (None: it was disabled)."""
        began = attempt.attempted_at_us
        if verdict is Verdict.DISABLE:
            await self.store.record_attempt(delivery, attempt, status="failed", next_attempt_at_us=began)
            if await self.store.disable(endpoint.id, reason="gone", now_us=now_us()):
                self._disabled(endpoint.id, "gone", "the receiver answered 410 Gone")
            return None
        first = delivery.first_attempt_at_us or began
        delay = self.schedule.next_delay(delivery.attempts + 1, (began - first) / 1e6, retry_after=retry_after)
        if delay is None:
            await self.store.record_attempt(delivery, attempt, status="failed", next_attempt_at_us=began)
            if await self.store.disable(endpoint.id, reason="failing", now_us=now_us()):
                self._disabled(endpoint.id, "failing",
                               f"delivery {delivery.msg_id} failed {delivery.attempts + 1} times over a day")
            return None
        next_at = began + int(delay * 1_000_000)
        await self.store.record_attempt(delivery, attempt, status="pending", next_attempt_at_us=next_at)
        return next_at

    def _disabled(self, endpoint_id: str, reason: str, detail: str) -> None:
        log.error("webhook endpoint %s disabled: %s (%s)", endpoint_id, reason, detail)
        self.recorder.submit_quietly([endpoint_disabled_event(endpoint_id, reason, detail)],
                                     what="a webhook endpoint disabled")
