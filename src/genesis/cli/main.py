"""The ``genesis`` command."""

from __future__ import annotations

import typer

from genesis.cli import audit, clients, db, prices, serve, users

app = typer.Typer(
    help="Genesis: integration and audit layer of an algorithmic-trading system.",
    no_args_is_help=True, pretty_exceptions_show_locals=False,
)
app.add_typer(serve.app, name="serve")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(clients.app, name="clients")
app.add_typer(prices.app, name="prices")
app.add_typer(audit.app, name="audit")
