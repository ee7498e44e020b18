"""Entry points of child processes (multiprocessing with spawn imports them by name)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any


def create_signing_key(data_dir: str) -> str:
    from genesis.audit.checkpoints import CheckpointSigner

    return CheckpointSigner.from_data_dir(Path(data_dir)).key_id


def append_with_own_writer(url: str, count: int, tag: str, key_dir: str) -> int:
    """Run a writer of this process against ``url``; returns how many events it committed."""
    from genesis.audit.checkpoints import CheckpointSigner
    from genesis.audit.events import new_event
    from genesis.audit.writer import AuditWriter
    from genesis.storage.audit_sql import open_audit_store

    store = open_audit_store(url)
    writer = AuditWriter(store, batch_max=64, signer=CheckpointSigner.from_data_dir(Path(key_dir)))
    try:
        tickets = [writer.submit(new_event("test.mp", actor=tag, message=f"{tag}-{i}")) for i in range(count)]
        return len([t.wait(60) for t in tickets])
    finally:
        writer.close()
        store.close()


def log_many_lines(settings_values: dict[str, Any], count: int, tag: str, start: Any = None, nice: int = 0) -> None:
    """Configure logging from settings in this process and write ``count`` tagged lines.

    ``start`` (a barrier) lines the processes up so that they write at the same time; ``nice`` lowers this
    process's priority once imports are done, so that CPU-bound neighbours starve it while it writes and closes.
    """
    from genesis.audit.logging import setup_logging
    from genesis.config import Settings

    settings = Settings(_env_file=None, **settings_values)
    if nice:
        os.nice(nice)  # on Linux a thread's own: before setup_logging, whose listener thread inherits it
    runtime = setup_logging(settings)
    log = logging.getLogger("genesis.test.rotation")
    if start is not None:
        start.wait(120)
    try:
        for i in range(count):
            log.warning("line %s-%d %s", tag, i, "x" * 120, extra={"n": i, "tag": tag})
    finally:
        runtime.close()


def burn_cpu(stop: Any, seconds: float) -> None:
    """Spin until ``stop`` is set or ``seconds`` have passed (the bound holds even if the test dies)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        for _ in range(200_000):
            pass
