"""``genesis users``: manage people who log in with a password."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from genesis.cli.common import record, run_with_runtime
from genesis.runtime import Runtime
from genesis.safetext import printable, printable_row
from genesis.security.scopes import ROLES
from genesis.services import accounts
from genesis.timeutil import rfc3339

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
    typer.echo(f"created user {printable(name)} ({role})")


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
        typer.echo(printable_row(row["username"], row["role"], "disabled" if row["disabled"] else "active",
                                 widths=(32, 8, 0)))


def _set_disabled(name: str, disabled: bool) -> int:
    async def action(rt: Runtime) -> int:
        ended = await accounts.set_user_disabled(users=rt.users, tokens=rt.tokens, username=name, disabled=disabled)
        verb = "disable" if disabled else "enable"
        await record(rt, f"admin.user.{verb}", f"{verb}d user {name!r}", target=name,
                     metadata={"sessions_ended": ended} if disabled else None)
        return ended

    return run_with_runtime(action)


@app.command()
def disable(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """Disable a user: their sessions end and their tokens stop working at once (enabling does not revive them)."""
    ended = _set_disabled(name, True)
    typer.echo(f"disabled {printable(name)} ({ended} sessions ended)")


@app.command()
def enable(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """Enable a disabled user (who logs in again: earlier tokens stay invalid)."""
    _set_disabled(name, False)
    typer.echo(f"enabled {printable(name)}")


@app.command("set-role")
def set_role(name: Annotated[str, typer.Argument(help="Username.")], role: RoleOption) -> None:
    """Give a user another role; their sessions end at once (they log in again under the new role)."""

    async def action(rt: Runtime) -> int:
        ended = await accounts.set_user_role(users=rt.users, tokens=rt.tokens, username=name, role=role)
        await record(rt, "admin.user.set_role", f"set the role of {name!r} to {role}", target=name,
                     metadata={"role": role, "sessions_ended": ended})
        return ended

    ended = run_with_runtime(action)
    typer.echo(f"role of {printable(name)} is now {role} ({ended} sessions ended)")


@app.command()
def sessions(
    name: Annotated[str, typer.Argument(help="Username.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List a user's running sessions (one per login)."""

    async def action(rt: Runtime) -> list[dict[str, object]]:
        found = await accounts.list_user_sessions(users=rt.users, tokens=rt.tokens, username=name)
        return [{"id": s.id, "created_at": rfc3339(s.created_at_us), "expires_at": rfc3339(s.expires_at_us),
                 "last_used_at": rfc3339(s.last_used_at_us), "source_ip": s.source_ip, "user_agent": s.user_agent,
                 "scope": s.scope} for s in found]

    rows = run_with_runtime(action)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(printable_row(row["id"], row["created_at"], row["expires_at"], row["source_ip"] or "-",
                                 row["user_agent"] or "-", widths=(32, 27, 27, 16, 0)))


@app.command("end-sessions")
def end_sessions(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """End every session and token of a user at once (they must log in again)."""

    async def action(rt: Runtime) -> int:
        ended = await accounts.end_user_sessions(users=rt.users, tokens=rt.tokens, username=name)
        await record(rt, "admin.user.end_sessions", f"ended the sessions of {name!r}", target=name,
                     metadata={"sessions_ended": ended})
        return ended

    ended = run_with_runtime(action)
    typer.echo(f"ended {ended} sessions of {printable(name)}")


@app.command("set-password")
def set_password(
    name: Annotated[str, typer.Argument(help="Username.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Set a user's password."""
    password = _read_password(password_stdin)

    async def action(rt: Runtime) -> int:
        ended = await accounts.set_user_password(users=rt.users, tokens=rt.tokens, username=name, password=password)
        await record(rt, "admin.user.set_password", f"changed the password of {name!r}", target=name,
                     metadata={"sessions_ended": ended})
        return ended

    ended = run_with_runtime(action)
    typer.echo(f"password of {printable(name)} changed ({ended} sessions ended)")
