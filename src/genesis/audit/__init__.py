"""Genesis logging and tamper-evident audit trail.

The public surface: build events (:func:`new_event`), record them through the
:class:`AuditRecorder` (which hands them to the :class:`AuditWriter` of an :class:`AuditStore`),
verify (:func:`verify_store`, :func:`verify_export`), export and archive, and configure logging
(:func:`setup_logging`). ``log_action`` and ``get_audit_logs`` keep the original API on top of
the recorder that :func:`configure` sets (``genesis.configure()`` does it from the settings).
"""

from __future__ import annotations

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
from genesis.audit.export import verify_export
from genesis.audit.levels import AUDIT
from genesis.audit.library import get_audit_logs, log_action
from genesis.audit.logging import LoggingHandle, setup_logging
from genesis.audit.recorder import AuditRecorder
from genesis.audit.store import ArchiveRecord, AuditStore, ChainHead
from genesis.audit.trail import archive_events, export_events, verify_store
from genesis.audit.writer import AuditWriter, Ticket

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
    "LoggingHandle",
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
    "verify_export",
    "verify_store",
]
