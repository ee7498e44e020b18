"""``genesis db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from genesis.cli.common import settings
from genesis.storage.migrate import current_revision, upgrade_database

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    cfg = settings()
    upgrade_database(cfg.db_url, revision=revision)
    typer.echo(f"database at revision {current_revision(cfg.db_url)}")


@app.command()
def current() -> None:
    """Print the revision the database is at."""
    typer.echo(current_revision(settings().db_url) or "none (run `genesis db upgrade`)")
