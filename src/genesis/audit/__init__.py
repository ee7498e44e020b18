"""Genesis logging and tamper-evident audit trail.

The public surface: build events (:func:`new_event`), record them through the
:class:`AuditRecorder` (which hands them to the :class:`AuditWriter` of an :class:`AuditStore`),
verify (:func:`verify_store`, :func:`verify_export_file`), export and archive, sign tree heads
(:class:`HeadMaker`), and configure logging (:func:`setup_logging`). ``log_action`` and
``get_audit_logs`` keep the original API on top of the recorder that :func:`configure` sets
(``genesis.configure()`` does it from the settings).

The names are imported on first use (PEP 562): ``import genesis.audit.verifier`` (the offline
verifier: standard library and ``cryptography`` only) does not pull in the rest of the subsystem
and its dependencies (orjson, prometheus_client).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genesis.audit.chain import ChainHasher, VerifyReport, verify_chain
    from genesis.audit.checkpoints import (
        Checkpoint,
        CheckpointSigner,
        export_public_key,
        key_id,
        load_or_create_signing_key,
        load_public_key,
        public_key_pem,
    )
    from genesis.audit.config import AuditConfig, configure, get_config
    from genesis.audit.context import (
        bind_correlation,
        bind_request,
        get_correlation_id,
        new_correlation_id,
        run_with_context,
        set_user,
    )
    from genesis.audit.events import GENESIS_HASH, AuditEvent, new_event, uuid7
    from genesis.audit.exportfile import verify_export_file
    from genesis.audit.heads import HeadMaker
    from genesis.audit.levels import AUDIT
    from genesis.audit.library import get_audit_logs, log_action
    from genesis.audit.logging import LoggingHandle, setup_logging
    from genesis.audit.recorder import AuditRecorder
    from genesis.audit.store import ArchiveRecord, AuditStore, ChainHead, StoredHead
    from genesis.audit.trail import archive_events, export_events, verify_store
    from genesis.audit.writer import AuditWriter, Ticket

_LAZY: dict[str, str] = {
    "ChainHasher": "genesis.audit.chain",
    "VerifyReport": "genesis.audit.chain",
    "verify_chain": "genesis.audit.chain",
    "Checkpoint": "genesis.audit.checkpoints",
    "CheckpointSigner": "genesis.audit.checkpoints",
    "export_public_key": "genesis.audit.checkpoints",
    "key_id": "genesis.audit.checkpoints",
    "load_or_create_signing_key": "genesis.audit.checkpoints",
    "load_public_key": "genesis.audit.checkpoints",
    "public_key_pem": "genesis.audit.checkpoints",
    "AuditConfig": "genesis.audit.config",
    "configure": "genesis.audit.config",
    "get_config": "genesis.audit.config",
    "bind_correlation": "genesis.audit.context",
    "bind_request": "genesis.audit.context",
    "get_correlation_id": "genesis.audit.context",
    "new_correlation_id": "genesis.audit.context",
    "run_with_context": "genesis.audit.context",
    "set_user": "genesis.audit.context",
    "GENESIS_HASH": "genesis.audit.events",
    "AuditEvent": "genesis.audit.events",
    "new_event": "genesis.audit.events",
    "uuid7": "genesis.audit.events",
    "verify_export_file": "genesis.audit.exportfile",
    "HeadMaker": "genesis.audit.heads",
    "AUDIT": "genesis.audit.levels",
    "get_audit_logs": "genesis.audit.library",
    "log_action": "genesis.audit.library",
    "LoggingHandle": "genesis.audit.logging",
    "setup_logging": "genesis.audit.logging",
    "AuditRecorder": "genesis.audit.recorder",
    "ArchiveRecord": "genesis.audit.store",
    "AuditStore": "genesis.audit.store",
    "ChainHead": "genesis.audit.store",
    "StoredHead": "genesis.audit.store",
    "archive_events": "genesis.audit.trail",
    "export_events": "genesis.audit.trail",
    "verify_store": "genesis.audit.trail",
    "AuditWriter": "genesis.audit.writer",
    "Ticket": "genesis.audit.writer",
}

__all__ = [
    "AUDIT",
    "GENESIS_HASH",
    "ArchiveRecord",
    "AuditConfig",
    "AuditEvent",
    "AuditRecorder",
    "AuditStore",
    "AuditWriter",
    "ChainHasher",
    "ChainHead",
    "Checkpoint",
    "CheckpointSigner",
    "HeadMaker",
    "LoggingHandle",
    "StoredHead",
    "Ticket",
    "VerifyReport",
    "archive_events",
    "bind_correlation",
    "bind_request",
    "configure",
    "export_events",
    "export_public_key",
    "get_audit_logs",
    "get_config",
    "get_correlation_id",
    "key_id",
    "load_or_create_signing_key",
    "load_public_key",
    "log_action",
    "new_correlation_id",
    "new_event",
    "public_key_pem",
    "run_with_context",
    "set_user",
    "setup_logging",
    "uuid7",
    "verify_chain",
    "verify_export_file",
    "verify_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
