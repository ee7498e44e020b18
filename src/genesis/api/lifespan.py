"""The API's lifespan: what a server does when it starts and stops, and the loops it runs meanwhile.

Start: migrations (best effort: ``/ready`` says what is wrong), logging, the runtime (the audit trail
may still be down), the push hub and the audit feed, ``genesis.audit.configure`` for ``log_action`` in
server code, the first admin, an ``audit.start`` event. Meanwhile: refusal-window summaries, scheduled
chain verification, PostgreSQL partitions ahead of time, the webhook relay. Stop: ``audit.stop``, then
everything closed in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI

from genesis import audit
from genesis.api.metrics import watch_push
from genesis.audit import new_event, setup_logging
from genesis.audit.monitor import ChainMonitor, ChainState
from genesis.runtime import Runtime, webhook_policy
from genesis.services.audit_trail import trusted_keys
from genesis.services.tasks import uninterrupted
from genesis.services.webhook_relay import WebhookRelay, single_relay_lock
from genesis.services.webhook_sender import WebhookSender
from genesis.storage.partitions import ensure_audit_partitions

log = logging.getLogger("genesis.api")

PARTITION_CHECK_SECONDS = 6 * 3600
FULL_VERIFY_SECONDS = 3600.0
RELAY_LOCK_RETRY_SECONDS = 5.0  # scheduled checks are incremental; one an hour re-reads the whole chain

Lifespan = Callable[[FastAPI], Any]


def server_lifespan(runtime: Runtime, *, migrate: bool) -> Lifespan:
    """The lifespan of an app serving ``runtime``."""
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            try:
                await asyncio.to_thread(Runtime.migrate, settings)
            except Exception as exc:  # keep serving: /ready says what is wrong
                log.error("migrations could not be applied: %s", type(exc).__name__)
        logging_handle = await asyncio.to_thread(setup_logging, settings)
        await runtime.start()
        await _start_push(runtime)
        audit.configure(recorder=runtime.recorder, store=runtime.audit.store)
        await _bootstrap_admin(runtime)
        await _record_lifecycle(runtime, "audit.start", "audit logging started")
        tasks = [_spawn(_summarise_refusals(runtime))]
        if settings.audit_verify_interval_seconds > 0:
            tasks.append(_spawn(_verify_continuously(runtime, app)))
        if not settings.is_sqlite:
            tasks.append(_spawn(_keep_partitions_ahead(runtime)))
        sender = WebhookSender(policy=webhook_policy(settings),
                               connect_timeout=settings.webhook_connect_timeout_seconds,
                               total_timeout=settings.webhook_timeout_seconds)
        tasks.append(_spawn(_relay_webhooks(runtime, sender)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task
            await sender.aclose()
            await _record_lifecycle(runtime, "audit.stop", "audit logging stopped")
            if audit.get_config().recorder is runtime.recorder:
                audit.configure(recorder=None, store=None)
            await runtime.close()
            await asyncio.to_thread(logging_handle.close)

    return lifespan


async def _start_push(runtime: Runtime) -> None:
    """The hub (and its Redis reader), and committed audit events onto the ``audit`` streams."""
    try:
        await runtime.hub.start()
    except Exception as exc:  # Redis may come later: the broker's reader keeps retrying on its own
        log.warning("push hub could not start: %s", type(exc).__name__)
    runtime.audit_feed.start()
    watch_push(runtime)
    if runtime.audit_feed.committed not in runtime.audit.commit_listeners:
        runtime.audit.commit_listeners.append(runtime.audit_feed.committed)


def _spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    # A fresh context: a loop outlives whatever request is running now and must not log under its correlation id.
    return asyncio.create_task(coro, context=contextvars.Context())


async def _bootstrap_admin(runtime: Runtime) -> None:
    settings = runtime.settings
    try:
        generated = await runtime.auth.bootstrap_admin(
            username=settings.admin_username,
            password=settings.admin_password.get_secret_value() if settings.admin_password else None,
        )
    except Exception as exc:  # the database may come up later: serve /ready as 503 meanwhile
        log.warning("could not check for the bootstrap admin: %s", type(exc).__name__)
        return
    if generated:
        # Printed once, straight to the terminal: never through logging, so it reaches no log file.
        print(
            f"\n  Created admin user {settings.admin_username!r} with password: {generated}\n"
            "  (shown once; change it with `genesis users set-password`)\n",
            file=sys.stderr, flush=True,
        )


async def _record_lifecycle(runtime: Runtime, action: str, message: str) -> None:
    """``audit.start`` / ``audit.stop``: servers say when they began and stopped recording (PCI DSS 10.2.1.6)."""
    try:
        await runtime.recorder.record(new_event(action, message=message))
    except Exception as exc:  # the store may be down at start; the trail shows the gap
        log.error("could not record %s: %s", action, type(exc).__name__)


async def _summarise_refusals(runtime: Runtime) -> None:
    """Turn closed rate-limit refusal windows into summary events while the server runs."""
    period = max(1.0, runtime.settings.audit_refusal_window_seconds / 2)
    while True:
        await asyncio.sleep(period)
        runtime.recorder.flush_refusals()


async def _verify_continuously(runtime: Runtime, app: FastAPI) -> None:
    """Re-verify the chain on a schedule (see ``genesis.audit.monitor``); report each new break once.

    The monitor is published as ``app.state.chain_monitor`` for inspection.
    """
    settings = runtime.settings
    interval = settings.audit_verify_interval_seconds
    await asyncio.sleep(min(interval, 10.0))  # let the process start serving first
    hmac_key = settings.audit_hmac_key.get_secret_value() if settings.audit_hmac_key else None
    monitor: ChainMonitor | None = None
    reported: str | None = None
    last_full = time.monotonic()
    while True:
        try:
            store = runtime.audit.store
            if store is not None:
                if monitor is None or monitor.store is not store:
                    keys = await asyncio.to_thread(trusted_keys, settings.data_dir, settings.audit_log_origin,
                                                   settings.audit_public_keys)
                    monitor = app.state.chain_monitor = ChainMonitor(store, hmac_key=hmac_key, keys=keys)
                full = time.monotonic() - last_full >= FULL_VERIFY_SECONDS
                state = await asyncio.to_thread(functools.partial(monitor.check, full=full))
                if full:
                    last_full = time.monotonic()
                reported = _report_chain_state(runtime, state, reported)
        except Exception as exc:  # the store may be away; the next round tries again
            log.warning("scheduled audit verification could not run: %s", type(exc).__name__)
        await asyncio.sleep(interval)


def _report_chain_state(runtime: Runtime, state: ChainState, reported: str | None) -> str | None:
    problem = state.problem
    if problem is None:
        if reported is not None:
            log.warning("audit chain verifies again (through seq %d)", state.verified_seq)
        return None
    if problem != reported:
        log.error("AUDIT CHAIN BROKEN: %s", problem)
        runtime.recorder.submit_quietly(
            [new_event("audit.verify.failed", outcome="failure", level="ERROR",
                       message=f"scheduled verification: {problem}", metadata={"verified_seq": state.verified_seq})],
            what="a verification failure")
    return problem


async def _relay_webhooks(runtime: Runtime, sender: WebhookSender) -> None:
    """The webhook relay: every worker on PostgreSQL (they share leases), one per data directory on SQLite."""
    settings = runtime.settings
    relay = WebhookRelay(store=runtime.webhooks, sender=sender, recorder=runtime.recorder,
                         outbox_limit=settings.webhook_outbox_max_pending, poll_seconds=settings.webhook_poll_seconds)
    runtime.publisher.on_outbox(relay.wake)
    if not settings.is_sqlite:
        await relay.run()
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = single_relay_lock(settings.data_dir / "webhook-relay.lock")
    while lock is None:  # another worker relays; take over if it dies (the lock dies with its process)
        await asyncio.sleep(RELAY_LOCK_RETRY_SECONDS)
        lock = single_relay_lock(settings.data_dir / "webhook-relay.lock")
    try:
        await relay.run()
    finally:
        lock.close()


async def _keep_partitions_ahead(runtime: Runtime) -> None:
    """Create next months' audit partitions now and every few hours (PostgreSQL)."""
    async def ensure() -> list[str]:
        async with runtime.engine.begin() as conn:
            return await conn.run_sync(ensure_audit_partitions)

    while True:
        try:
            created = await uninterrupted(ensure())  # a shutdown waits for the check to end
            if created:
                log.info("created audit partitions %s", ", ".join(created))
        except Exception as exc:
            log.warning("could not create audit partitions ahead: %s", type(exc).__name__)
        await asyncio.sleep(PARTITION_CHECK_SECONDS)
