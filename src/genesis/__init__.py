"""Genesis: integration and audit layer of an algorithmic-trading system.

As a library, one line of set-up per process makes ``genesis.audit.log_action`` and
``get_audit_logs`` write to and read from the same trail as the server::

    import genesis
    genesis.configure()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genesis.runtime import LibraryHandle

__version__ = "0.1.0"
__all__ = ["__version__", "configure"]


def configure(**settings: Any) -> LibraryHandle:
    """Open this installation's audit trail and logging for ``log_action`` / ``get_audit_logs``.

    Reads the ``GENESIS_*`` settings (and ``.env``) the server reads; keyword arguments override
    them (e.g. ``data_dir="/srv/genesis"``). Idempotent; the trail is drained at interpreter exit.

    Raises:
        genesis.errors.ConfigurationError: the settings are invalid.
        genesis.errors.Unavailable: the audit store cannot be opened.
    """
    from genesis.config import load_settings
    from genesis.runtime import configure_library

    return configure_library(load_settings(**settings) if settings else None)
