"""``genesis clients``: manage machine clients (OAuth2 client credentials)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from genesis.cli.common import record, run_with_runtime
from genesis.runtime import Runtime
from genesis.safetext import printable_row
from genesis.security.scopes import ROLES
from genesis.services import accounts

app = typer.Typer(help="Manage machine clients (client id + secret).", no_args_is_help=True, rich_markup_mode=None,
                  add_completion=False)


@app.command()
def create(
    client_id: Annotated[str | None, typer.Argument(help="Client id (default: generated).")] = None,
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")] = "trader",
    description: Annotated[str, typer.Option(help="What this client is.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a client; its secret is printed once and only its hash is kept."""

    async def action(rt: Runtime) -> accounts.NewClient:
        new = await accounts.create_client(clients=rt.clients, role=role, client_id=client_id, description=description)
        await record(rt, "admin.client.create", f"created client {new.client_id!r} ({role})", target=new.client_id)
        return new

    new = run_with_runtime(action)
    if as_json:
        typer.echo(json.dumps({"client_id": new.client_id, "client_secret": new.client_secret, "role": new.role}))
        return
    typer.echo(f"client_id:     {new.client_id}\nclient_secret: {new.client_secret}\nrole:          {new.role}")
    typer.echo("Store the secret now: it is not shown again.", err=True)


@app.command("list")
def list_clients(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List clients (never their secrets)."""

    async def action(rt: Runtime) -> list[dict[str, object]]:
        return [{"client_id": c.client_id, "role": c.role, "revoked": c.revoked, "description": c.description}
                for c in await accounts.list_clients(clients=rt.clients)]

    rows = run_with_runtime(action)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(printable_row(row["client_id"], row["role"], "revoked" if row["revoked"] else "active",
                                 row["description"], widths=(32, 8, 7)))


@app.command()
def revoke(client_id: Annotated[str, typer.Argument(help="Client id.")]) -> None:
    """Revoke a client: its tokens stop working at once."""

    async def action(rt: Runtime) -> None:
        await accounts.revoke_client(clients=rt.clients, client_id=client_id)
        await record(rt, "admin.client.revoke", f"revoked client {client_id!r}", target=client_id)

    run_with_runtime(action)
    typer.echo(f"revoked {client_id}")
