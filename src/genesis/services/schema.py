"""Database administration shared by the CLI and the server: migrations, audit partitions, the service's role."""

from __future__ import annotations

from genesis.errors import Conflict, Unavailable
from genesis.storage.grants import Grant
from genesis.storage.grants import grant_app_role as _grant_app_role
from genesis.storage.migrate import current_revision, upgrade_database
from genesis.storage.partitions import MONTHS_AHEAD

__all__ = ["MONTHS_AHEAD", "Grant", "create_partitions", "current", "drop_archived_partitions", "grant_app_role",
           "upgrade"]


def upgrade(database_url: str, *, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; returns the revision the database is at."""
    upgrade_database(database_url, revision=revision)
    return current_revision(database_url)


def current(database_url: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    return current_revision(database_url)


def create_partitions(database_url: str, *, months_ahead: int = MONTHS_AHEAD, required: bool) -> list[str]:
    """Create the missing monthly audit partitions as the connected role (PostgreSQL).

    Raises:
        Conflict: ``required`` and the role may not create them (it is not the owner).
        Unavailable: the database cannot be reached.
    """
    from sqlalchemy import create_engine, pool
    from sqlalchemy.exc import OperationalError

    from genesis.storage.database import sync_url
    from genesis.storage.partitions import can_create_partitions, ensure_audit_partitions

    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if required and not can_create_partitions(conn):
                raise Conflict("this database role may not create audit partitions: run it as the owner of "
                               "audit_events (the role that ran `genesis db upgrade`)")
            return ensure_audit_partitions(conn, months_ahead=months_ahead)
    except OperationalError as exc:
        raise Unavailable(f"cannot reach the database: {type(exc.orig).__name__}", component="database") from exc
    finally:
        engine.dispose()


def drop_archived_partitions(database_url: str) -> list[str]:
    """Detach and drop the monthly partitions an archive emptied (PostgreSQL; nothing on SQLite)."""
    if database_url.startswith("sqlite"):
        return []
    from sqlalchemy import create_engine, pool

    from genesis.storage.database import sync_url
    from genesis.storage.partitions import drop_archived_partitions as drop

    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            return drop(conn)
    finally:
        engine.dispose()


def grant_app_role(database_url: str, role: str) -> list[Grant]:
    """Let ``role`` run the service: SELECT and INSERT on the audit trail only, DML on the other tables."""
    return _grant_app_role(database_url, role)
