"""Apply Alembic migrations programmatically (on start and via ``genesis db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str, *, schema: str | None = None) -> Config:
    """An Alembic config pointing at Genesis's migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if schema:
        cfg.attributes["schema"] = schema
    return cfg


def upgrade_database(url: str, *, revision: str = "head", schema: str | None = None) -> None:
    """Bring the database at ``url`` up to ``revision``."""
    from sqlalchemy.exc import ProgrammingError

    from genesis.errors import ConfigurationError
    from genesis.storage.database import prepare_sqlite_file, sqlite_path

    path = sqlite_path(url)
    if path is not None:
        prepare_sqlite_file(path)
    try:
        command.upgrade(alembic_config(url, schema=schema), revision)
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        raise ConfigurationError(
            "the database schema is behind this release and this database role may not migrate it: "
            "run `genesis db upgrade` as the owner, then `genesis db grant-app-role` (see docs/deploy.md)"
        ) from exc


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None when never migrated)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    from genesis.storage.database import sync_url

    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
