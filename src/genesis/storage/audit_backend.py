"""The audit store, its writer and its head maker, opened together, lazily, and reopened after an outage.

A server must start and answer ``/ready`` (503) while its database is away; the first request
after it comes back reopens the store. The ``AuditRecorder`` calls :meth:`AuditBackend.reconnect`
for that (at most once per retry interval), so nothing else needs to know the trail was down.

Signed tree heads: :meth:`AuditBackend.heads` is the :class:`~genesis.audit.heads.HeadMaker` of
the open store; :meth:`AuditBackend.on_head` registers a callback for every new head this process
makes, whenever the store is (re)opened (the push engineer's ``audit.heads`` topic hooks in here).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from genesis.audit import AuditStore, AuditWriter
from genesis.audit.checkpoints import load_or_create_signing_key
from genesis.audit.heads import HeadListener, HeadMaker, log_signer
from genesis.audit.writer import CommitListener
from genesis.errors import Unavailable
from genesis.storage.audit_sql import open_audit_store

log = logging.getLogger("genesis.storage.audit")


class AuditBackend:
    """Owns one process's audit store and writer; thread-safe."""

    def __init__(
        self, *, database_url: str, data_dir: Path, hmac_key: str | None, timeout_seconds: float,
        batch_max: int, head_interval_seconds: float = 60.0, head_log: Path | None = None,
        log_origin: str | None = None,
    ) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.hmac_key = hmac_key
        self.timeout_seconds = timeout_seconds
        self.batch_max = batch_max
        self.head_interval_seconds = head_interval_seconds
        self.head_log = head_log
        self.log_origin = log_origin
        self._lock = threading.Lock()
        self._store: AuditStore | None = None
        self._writer: AuditWriter | None = None
        self._heads: HeadMaker | None = None
        self._listeners: list[HeadListener] = []
        self.commit_listeners: list[CommitListener] = []  # handed to every writer this backend opens

    @property
    def store(self) -> AuditStore | None:
        """The open store, or None while the database is unreachable."""
        return self._store

    @property
    def writer(self) -> AuditWriter | None:
        return self._writer

    def on_head(self, callback: HeadListener) -> None:
        """Call ``callback(head)`` with every signed tree head this process makes (from any maker it opens)."""
        self._listeners.append(callback)

    def heads(self) -> HeadMaker:
        """The head maker of the open store (opened for reading if need be).

        Raises:
            Unavailable: the store cannot be opened, or the signing key cannot be read.
        """
        store = self.open_store()
        with self._lock:
            if self._heads is None or self._heads.store is not store:
                try:
                    key = load_or_create_signing_key(self.data_dir)
                except (OSError, ValueError) as exc:
                    raise Unavailable(f"the audit signing key cannot be read: {type(exc).__name__}",
                                      component="audit") from exc
                self._heads = HeadMaker(store, log_signer(key, self.log_origin), head_log=self.head_log,
                                        interval_seconds=self.head_interval_seconds, listeners=self._listeners)
            return self._heads

    def open_store(self) -> AuditStore:
        """Open the store only (no writer, no checkpoint): for reading, verifying and exporting.

        Raises:
            Exception: whatever the driver raises when the database cannot be reached.
        """
        with self._lock:
            if self._store is None:
                self._store = open_audit_store(self.database_url, hmac_key=self.hmac_key,
                                               timeout_seconds=self.timeout_seconds)
            return self._store

    def open(self) -> AuditWriter:
        """Open the store and start the writer (no-op when running).

        Raises:
            Exception: whatever the driver raises when the database cannot be reached.
        """
        store = self.open_store()
        heads = self.heads()
        with self._lock:
            if self._writer is not None:
                return self._writer
            self._writer = AuditWriter(store, batch_max=self.batch_max, heads=heads,
                                       head_interval=self.head_interval_seconds, listeners=self.commit_listeners)
            return self._writer

    async def reconnect(self) -> AuditWriter | None:
        """Try :meth:`open` off the event loop; None (logged) when the database is still away."""
        try:
            return await asyncio.to_thread(self.open)
        except Exception as exc:
            log.error("audit store unavailable: %s", type(exc).__name__)
            return None

    def close(self) -> None:
        """Commit what is queued, make the shutdown head, close the store (idempotent; ``open`` may follow)."""
        with self._lock:
            writer, store = self._writer, self._store
            self._writer = self._store = None
            self._heads = None
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
