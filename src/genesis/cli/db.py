"""``genesis db``: schema migrations, audit partitions and the service's least-privilege role."""

from __future__ import annotations

from typing import Annotated

import typer

from genesis.cli.common import fail, settings
from genesis.errors import ConfigurationError, Conflict, GenesisError, Unavailable
from genesis.storage.migrate import current_revision, upgrade_database
from genesis.storage.partitions import MONTHS_AHEAD

app = typer.Typer(help="Database schema migrations, audit partitions and the service's role.", no_args_is_help=True)


@app.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest); on PostgreSQL also create the audit partitions ahead."""
    cfg = settings()
    upgrade_database(cfg.db_url, revision=revision)
    typer.echo(f"database at revision {current_revision(cfg.db_url)}")
    if not cfg.is_sqlite and revision == "head":
        created = _create_partitions(cfg.db_url, MONTHS_AHEAD, required=False)
        if created:
            typer.echo(f"created audit partitions {', '.join(created)}")


@app.command()
def current() -> None:
    """Print the revision the database is at."""
    typer.echo(current_revision(settings().db_url) or "none (run `genesis db upgrade`)")


@app.command()
def partitions(
    months_ahead: Annotated[int, typer.Option(min=0, max=36, help="Create partitions this many months ahead.")]
    = MONTHS_AHEAD,
) -> None:
    """Create the missing monthly audit partitions (PostgreSQL; run as the owner, e.g. daily from cron)."""
    cfg = settings()
    if cfg.is_sqlite:
        fail(ConfigurationError("audit partitions exist on PostgreSQL only (GENESIS_DATABASE_URL is SQLite)"))
    created = _create_partitions(cfg.db_url, months_ahead, required=True)
    typer.echo(f"created audit partitions {', '.join(created)}" if created
               else f"audit partitions present up to {months_ahead} months ahead")


@app.command("grant-app-role")
def grant_app_role(
    role: Annotated[str, typer.Argument(help="The existing PostgreSQL role the service will connect as.")],
) -> None:
    """Let ROLE run the service: SELECT and INSERT on the audit trail only, DML on the other tables.

    Run as the owner of the tables (GENESIS_DATABASE_URL names the owner), after every `genesis db upgrade`;
    running it again is harmless.
    """
    from genesis.storage.grants import grant_app_role as grant

    cfg = settings()
    try:
        grants = grant(cfg.db_url, role)
    except GenesisError as exc:
        fail(exc)
        raise
    for item in grants:
        typer.echo(item.describe())
    typer.echo(f"granted to {role}; run the service with a URL naming {role}")


def _create_partitions(url: str, months_ahead: int, *, required: bool) -> list[str]:
    """Create the missing partitions as the connected role; ``required``: fail if it may not."""
    from sqlalchemy import create_engine, pool
    from sqlalchemy.exc import OperationalError

    from genesis.storage.database import sync_url
    from genesis.storage.partitions import can_create_partitions, ensure_audit_partitions

    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if required and not can_create_partitions(conn):
                fail(Conflict("this database role may not create audit partitions: run it as the owner of "
                              "audit_events (the role that ran `genesis db upgrade`)"))
            return ensure_audit_partitions(conn, months_ahead=months_ahead)
    except OperationalError as exc:
        fail(Unavailable(f"cannot reach the database: {type(exc.orig).__name__}", component="database"))
        raise
    finally:
        engine.dispose()
