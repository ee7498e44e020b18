"""The ``genesis`` command: a group whose command groups are imported only when one is run.

``genesis --help`` used to import every command module, and with them TA-Lib, SQLAlchemy and the whole
server (2.6-5.8 s); now it imports Typer and this module. ``genesis audit ...`` imports the audit commands
(and what they need) and nothing else.
"""

from __future__ import annotations

import importlib

import typer
from typer import _click
from typer.core import TyperGroup
from typer.main import get_command

# name -> (module whose ``app`` holds the commands, one-line help shown by ``genesis --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("genesis.cli.serve", "Apply migrations, create the first admin if there is none, and serve the API."),
    "db": ("genesis.cli.db", "Database schema migrations, audit partitions and the service's role."),
    "users": ("genesis.cli.users", "Manage users (people who log in with a password)."),
    "clients": ("genesis.cli.clients", "Manage machine clients (client id + secret)."),
    "prices": ("genesis.cli.prices", "Import and inspect stored prices."),
    "audit": ("genesis.cli.audit", "Query, verify, export and archive the tamper-evident audit trail."),
}


class LazyGroup(TyperGroup):
    """Lists :data:`COMMANDS` from their help lines; imports a command's module only to run it."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        found = COMMANDS.get(cmd_name)
        if found is None:
            return None
        module = importlib.import_module(found[0])
        command: _click.Command = get_command(module.app)
        command.name = cmd_name
        return command

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_line) for name, (_, help_line) in COMMANDS.items()])


app = typer.Typer(
    cls=LazyGroup, help="Genesis: integration and audit layer of an algorithmic-trading system.",
    no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_show_locals=False, add_completion=False,
)


@app.callback()
def main() -> None:
    """Genesis: integration and audit layer of an algorithmic-trading system.

    Every command reads the GENESIS_* settings (and .env) the server reads; `genesis COMMAND --help` tells more.
    """
