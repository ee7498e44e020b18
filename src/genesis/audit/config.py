"""The process's audit configuration, in the structlog manner: ``configure()`` once, ``get_config()`` anywhere.

``log_action`` and ``get_audit_logs`` (``genesis.audit.library``) read the recorder and the store
from here; nothing else is module-level state. The composition root fills it in:
``genesis.configure()`` for a script or library user, the API's lifespan for a server, the CLI
for one command. Tests call :func:`configure` directly and :func:`reset` afterwards.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from genesis.audit.recorder import AuditRecorder
from genesis.audit.store import AuditStore


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """What ``log_action`` records through and ``get_audit_logs`` reads from (None: not configured)."""

    recorder: AuditRecorder | None = None
    store: AuditStore | None = None


_config = AuditConfig()
_lock = threading.Lock()


def configure(*, recorder: AuditRecorder | None, store: AuditStore | None) -> AuditConfig:
    """Set the recorder and store behind ``log_action`` / ``get_audit_logs``; returns the new configuration."""
    global _config
    with _lock:
        _config = AuditConfig(recorder, store)
        return _config


def get_config() -> AuditConfig:
    """The current configuration (a frozen value: read it once per operation)."""
    return _config


def reset() -> None:
    """Forget the configuration (the recorder and store are not closed: their owner closes them)."""
    configure(recorder=None, store=None)
