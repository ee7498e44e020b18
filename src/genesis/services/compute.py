"""Run analytics off the event loop when the work is large enough to matter, within limits.

Small computations (a 100-price SMA takes microseconds) run inline: a thread hop
costs ~180 us, more than the work. Larger ones go to a worker thread so that
other requests keep being served; contextvars (correlation ids) follow them.

Large computations are bounded twice: at most ``max_concurrent`` run at once per
process (a burst of 100,000-price backtests cannot take every thread and all the
memory), and a request waits at most ``timeout_seconds`` for a slot and its result
together, then gets 503 with ``Retry-After``. A thread cannot be stopped, so a
computation that overruns keeps its slot until it really ends: the bound holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import os
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from genesis.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")

INLINE_MAX_POINTS = 5_000


class ComputeLimits:
    """How many large computations may run at once, and how long a request waits for one."""

    def __init__(self, *, timeout_seconds: float = 30.0, max_concurrent: int | None = None) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_concurrent = max_concurrent or max(1, os.cpu_count() or 1)
        # Threads of their own: computations never take the default executor's threads (SQLite
        # inserts, audit reads), and an overrun that keeps running holds one of these only.
        self.executor = ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="genesis-compute")
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def slots(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        """This event loop's semaphore (an asyncio.Semaphore belongs to one loop)."""
        sem = self._slots.get(loop)
        if sem is None:
            sem = self._slots[loop] = asyncio.Semaphore(self.max_concurrent)
        return sem

    def overrun(self, what: str) -> Unavailable:
        return Unavailable(f"{what} within {self.timeout_seconds:g} s; try again later", component="compute",
                           retry_after=max(1, math.ceil(self.timeout_seconds)))


_limits = ComputeLimits()


def configure_compute(*, timeout_seconds: float, max_concurrent: int | None = None) -> ComputeLimits:
    """Set this process's limits (the runtime does, from GENESIS_COMPUTE_* settings)."""
    global _limits
    _limits = ComputeLimits(timeout_seconds=timeout_seconds, max_concurrent=max_concurrent)
    return _limits  # the previous pool's idle threads end when it is collected


def _finished(slots: asyncio.Semaphore, future: asyncio.Future[object]) -> None:
    slots.release()
    if not future.cancelled():
        future.exception()  # retrieved: an overrun's late failure is not reported as never retrieved


async def run_sized(size: int, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call ``func`` inline for small inputs, in a worker thread within the limits for large ones.

    Raises:
        Unavailable: no slot freed up, or the computation did not finish, within the timeout.
    """
    if size <= INLINE_MAX_POINTS:
        return func(*args, **kwargs)
    limits = _limits
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout_seconds
    slots = limits.slots(loop)
    try:
        await asyncio.wait_for(slots.acquire(), timeout=limits.timeout_seconds)
    except TimeoutError:
        raise limits.overrun("no computation slot freed up") from None
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    try:
        future = loop.run_in_executor(limits.executor, call)
    except BaseException:
        slots.release()
        raise
    future.add_done_callback(functools.partial(_finished, slots))  # held until the thread really ends
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout=max(0.0, deadline - loop.time()))
    except TimeoutError:
        raise limits.overrun("the computation did not finish") from None
