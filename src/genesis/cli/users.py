"""``genesis users``: manage people who log in with a password."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from genesis.cli.common import record, run_with_runtime
from genesis.runtime import Runtime
from genesis.security.scopes import ROLES
from genesis.services import accounts

app = typer.Typer(help="Manage users (people who log in with a password).", no_args_is_help=True,
                  rich_markup_mode=None, add_completion=False)

RoleOption = Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Username.")],
    role: RoleOption = "viewer",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a user with ROLE; the password is prompted for (or read from stdin)."""
    password = _read_password(password_stdin)

    async def action(rt: Runtime) -> None:
        await accounts.create_user(users=rt.users, username=name, role=role, password=password)
        await record(rt, "admin.user.create", f"created user {name!r} with role {role}", target=name)

    run_with_runtime(action)
    typer.echo(f"created user {name} ({role})")


@app.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List users with their roles and state."""

    async def action(rt: Runtime) -> list[dict[str, object]]:
        return [{"username": u.username, "role": u.role, "disabled": u.disabled} for u in await rt.users.list()]

    rows = run_with_runtime(action)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(f"{row['username']:<32} {row['role']:<8} {'disabled' if row['disabled'] else 'active'}")


def _set_disabled(name: str, disabled: bool) -> None:
    async def action(rt: Runtime) -> None:
        await accounts.set_user_disabled(users=rt.users, username=name, disabled=disabled)
        verb = "disable" if disabled else "enable"
        await record(rt, f"admin.user.{verb}", f"{verb}d user {name!r}", target=name)

    run_with_runtime(action)


@app.command()
def disable(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """Disable a user: their tokens stop working at once."""
    _set_disabled(name, True)
    typer.echo(f"disabled {name}")


@app.command()
def enable(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """Enable a disabled user."""
    _set_disabled(name, False)
    typer.echo(f"enabled {name}")


@app.command("set-password")
def set_password(
    name: Annotated[str, typer.Argument(help="Username.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Set a user's password."""
    password = _read_password(password_stdin)

    async def action(rt: Runtime) -> None:
        await accounts.set_user_password(users=rt.users, username=name, password=password)
        await record(rt, "admin.user.set_password", f"changed the password of {name!r}", target=name)

    run_with_runtime(action)
    typer.echo(f"password of {name} changed")
