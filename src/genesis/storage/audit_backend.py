"""The audit store and its writer, opened together, lazily, and reopened after an outage.

A server must start and answer ``/ready`` (503) while its database is away; the first request
after it comes back reopens the store. The ``AuditRecorder`` calls :meth:`AuditBackend.reconnect`
for that (at most once per retry interval), so nothing else needs to know the trail was down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from genesis.audit import AuditStore, AuditWriter, CheckpointSigner
from genesis.audit.writer import CommitListener
from genesis.storage.audit_sql import open_audit_store

log = logging.getLogger("genesis.storage.audit")


class AuditBackend:
    """Owns one process's audit store and writer; thread-safe."""

    def __init__(
        self, *, database_url: str, data_dir: Path, hmac_key: str | None, timeout_seconds: float,
        batch_max: int, checkpoint_interval_seconds: float,
    ) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.hmac_key = hmac_key
        self.timeout_seconds = timeout_seconds
        self.batch_max = batch_max
        self.checkpoint_interval_seconds = checkpoint_interval_seconds
        self._lock = threading.Lock()
        self._store: AuditStore | None = None
        self._writer: AuditWriter | None = None
        self.commit_listeners: list[CommitListener] = []  # handed to every writer this backend opens

    @property
    def store(self) -> AuditStore | None:
        """The open store, or None while the database is unreachable."""
        return self._store

    @property
    def writer(self) -> AuditWriter | None:
        return self._writer

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
        with self._lock:
            if self._writer is not None:
                return self._writer
            self._writer = AuditWriter(
                store, batch_max=self.batch_max, checkpoint_interval=self.checkpoint_interval_seconds,
                signer=CheckpointSigner.from_data_dir(self.data_dir), listeners=self.commit_listeners,
            )
            return self._writer

    async def reconnect(self) -> AuditWriter | None:
        """Try :meth:`open` off the event loop; None (logged) when the database is still away."""
        try:
            return await asyncio.to_thread(self.open)
        except Exception as exc:
            log.error("audit store unavailable: %s", type(exc).__name__)
            return None

    def close(self) -> None:
        """Commit what is queued, write the shutdown checkpoint, close the store (idempotent; ``open`` may follow)."""
        with self._lock:
            writer, store = self._writer, self._store
            self._writer = self._store = None
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
