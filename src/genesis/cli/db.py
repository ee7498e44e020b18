"""``genesis db``: schema migrations, audit partitions and the service's least-privilege role."""

from __future__ import annotations

from typing import Annotated

import typer

from genesis.cli.common import fail, settings
from genesis.errors import ConfigurationError, GenesisError
from genesis.services import schema
from genesis.services.schema import MONTHS_AHEAD

app = typer.Typer(help="Database schema migrations, audit partitions and the service's role.", no_args_is_help=True,
                  rich_markup_mode=None, add_completion=False)


@app.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest); on PostgreSQL also create the audit partitions ahead."""
    cfg = settings()
    typer.echo(f"database at revision {schema.upgrade(cfg.db_url, revision=revision)}")
    if not cfg.is_sqlite and revision == "head":
        created = _create_partitions(cfg.db_url, MONTHS_AHEAD, required=False)
        if created:
            typer.echo(f"created audit partitions {', '.join(created)}")


@app.command()
def current() -> None:
    """Print the revision the database is at."""
    typer.echo(schema.current(settings().db_url) or "none (run `genesis db upgrade`)")


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
    cfg = settings()
    try:
        grants = schema.grant_app_role(cfg.db_url, role)
    except GenesisError as exc:
        fail(exc)
        raise
    for item in grants:
        typer.echo(item.describe())
    typer.echo(f"granted to {role}; run the service with a URL naming {role}")


def _create_partitions(url: str, months_ahead: int, *, required: bool) -> list[str]:
    try:
        return schema.create_partitions(url, months_ahead=months_ahead, required=required)
    except GenesisError as exc:
        fail(exc)
        raise
