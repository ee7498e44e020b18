"""Helpers shared by CLI command groups: settings, a runtime, the operator's audit events, errors as exit codes."""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

from genesis.audit import AuditEvent, new_event, setup_logging
from genesis.config import Settings, get_settings
from genesis.errors import ConfigurationError, GenesisError
from genesis.runtime import Runtime
from genesis.safetext import printable

T = TypeVar("T")


def settings() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        fail(exc)
        raise


def fail(exc: GenesisError) -> None:
    """Print the error and exit with the error's own exit code."""
    typer.secho(f"error: {printable(exc.message)}", err=True, fg=typer.colors.RED)
    raise typer.Exit(exc.exit_code)


def operator() -> tuple[str, str]:
    """(OS user, host) of whoever runs this command: the person behind every CLI audit event."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container without /etc/passwd entry)
        user = "unknown"
    return user, socket.gethostname()


def cli_event(action: str, message: str, *, target: str, metadata: dict[str, Any] | None = None) -> AuditEvent:
    """An audit event of the operator's action: actor ``cli:<user>@<host>``, the target in the metadata."""
    user, host = operator()
    return new_event(action, actor=f"cli:{user}@{host}", message=message,
                     metadata={"target": target, "operator": user, "host": host, **(metadata or {})})


async def record(runtime: Runtime, action: str, message: str, *, target: str,
                 metadata: dict[str, Any] | None = None) -> None:
    """Durably record an administrative action taken from the command line.

    Raises:
        Unavailable: the audit trail could not record it.
    """
    await runtime.recorder.record(cli_event(action, message, target=target, metadata=metadata))


def run_with_runtime(action: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True) -> T:
    """Migrate, open a runtime (logging to files only), run ``action`` on it, close it; errors become exit codes."""
    cfg = settings()

    async def main() -> T:
        logging_handle = await asyncio.to_thread(setup_logging, cfg.model_copy(update={"log_console": False}))
        runtime = Runtime.build(cfg)
        try:
            await runtime.start()
            return await action(runtime)
        finally:
            await runtime.close()
            await asyncio.to_thread(logging_handle.close)

    try:
        if migrate:
            Runtime.migrate(cfg)
        return asyncio.run(main())
    except GenesisError as exc:
        fail(exc)
        raise
