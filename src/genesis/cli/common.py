"""Helpers shared by CLI command groups: settings, a runtime, errors as exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import typer

from genesis.config import Settings, get_settings
from genesis.errors import ConfigurationError, GenesisError
from genesis.runtime import Runtime

T = TypeVar("T")

def settings() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        fail(exc)
        raise


def fail(exc: GenesisError) -> None:
    """Print the error and exit with the error's own exit code."""
    typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(exc.exit_code)


def run_with_runtime(action: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True) -> T:
    """Migrate, open a runtime, run ``action`` on it, close it; domain errors become exit codes."""
    cfg = settings()

    async def main() -> T:
        runtime = Runtime.build(cfg)
        await runtime.start(console_logging=False)
        try:
            return await action(runtime)
        finally:
            await runtime.close()

    try:
        if migrate:
            Runtime.migrate(cfg)
        return asyncio.run(_as_coroutine(main))
    except GenesisError as exc:
        fail(exc)
        raise


def _as_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> Coroutine[Any, Any, T]:
    return factory()
