"""``genesis serve``: migrate, bootstrap the admin, run uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from genesis.cli.common import fail, run_with_runtime, settings
from genesis.cli.startup import check_port_free, hold_data_dir
from genesis.errors import GenesisError

app = typer.Typer(help="Run the API server.", rich_markup_mode=None, add_completion=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", metavar="ADDRESS",
                                             help="Address to bind (default GENESIS_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", metavar="PORT",
                                             help="Port (default GENESIS_PORT or 8000).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", metavar="N",
                                                help="Worker processes (default GENESIS_WORKERS or 1).")] = None,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development only).")] = False,
) -> None:
    """Apply migrations, create the first admin if there is no user, and serve the API."""
    import uvicorn

    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"GENESIS_{name}"] = str(value)
    from genesis.config import get_settings

    get_settings.cache_clear()
    cfg = settings()
    try:
        check_port_free(cfg.host, cfg.port)
        lock = hold_data_dir(cfg.data_dir, host=cfg.host, port=cfg.port) if cfg.is_sqlite else None
    except GenesisError as exc:
        fail(exc)
        raise

    async def bootstrap(runtime: object) -> str | None:
        from genesis.runtime import Runtime

        assert isinstance(runtime, Runtime)
        password = cfg.admin_password.get_secret_value() if cfg.admin_password else None
        return await runtime.auth.bootstrap_admin(username=cfg.admin_username, password=password)

    generated = run_with_runtime(bootstrap)
    base = f"http://{cfg.host}:{cfg.port}"
    typer.echo(f"Genesis {base}  docs: {base}/docs  database: {cfg.db_url.split('@')[-1]}", err=True)
    if generated:
        typer.echo(
            f"Created admin user {cfg.admin_username!r} with password: {generated}  (shown once)", err=True
        )
    typer.echo(
        f"Log in: curl -s -X POST {base}/token -d grant_type=password -d username={cfg.admin_username} "
        "-d 'password=...'", err=True,
    )
    if cfg.workers > 1 and not cfg.redis_url:
        typer.echo("Warning: several workers without GENESIS_REDIS_URL: each worker's streams (/ws, /stream) carry "
                   "only what that worker produced (docs/push.md)", err=True)
    uvicorn.run(
        "genesis.api.asgi:create_default_app", factory=True, host=cfg.host, port=cfg.port,
        # One worker runs in this process; more run under uvicorn's supervisor, which restarts dead ones.
        workers=cfg.workers if cfg.workers > 1 and not reload else None, reload=reload, proxy_headers=False,
        server_header=False, log_config=None, access_log=False, timeout_keep_alive=5,
        limit_concurrency=cfg.max_connections, timeout_graceful_shutdown=10,
        # Streams: protocol pings as the heartbeat, no per-connection compression state (memory per idle socket),
        # and client messages are small JSON (4 KiB is checked again by the route).
        ws="websockets-sansio", ws_ping_interval=cfg.push_heartbeat_seconds, ws_ping_timeout=cfg.push_heartbeat_seconds,
        ws_per_message_deflate=False, ws_max_size=64 * 1024,
        http="genesis.api.http_protocol:HeaderDeadlineProtocol",  # uvicorn's httptools + a header deadline
    )
    if lock is not None:
        lock.close()
