"""Background work that a shutdown may cancel at any moment, done so that cancelling leaks nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

FINISH_SECONDS = 10.0


async def uninterrupted(work: Awaitable[T], *, finish_seconds: float = FINISH_SECONDS) -> T:
    """Await ``work`` to its end even when the caller is cancelled meanwhile, then let the cancellation through.

    A database call cancelled half-way leaves its connection checked out, to be closed by the garbage collector
    (psycopg warns; the pool never gets it back). A background loop wraps each unit of database work in this, so
    that stopping the loop waits (at most ``finish_seconds``) for the unit to end instead of cutting it.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait({task}, timeout=finish_seconds)
        if not task.done():
            task.cancel()
        raise
