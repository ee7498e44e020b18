"""Large computations run off the event loop within a concurrency bound and a timeout (503 when exceeded)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from genesis.errors import Unavailable
from genesis.services import compute
from genesis.services.compute import INLINE_MAX_POINTS, configure_compute, run_sized

BIG = INLINE_MAX_POINTS + 1


@pytest.fixture(autouse=True)
def restore_limits() -> Iterator[None]:
    saved = compute._limits
    yield
    compute._limits = saved


def test_small_work_runs_inline_and_large_work_in_a_thread_with_the_callers_context() -> None:
    configure_compute(timeout_seconds=5)
    main = threading.get_ident()

    async def scenario() -> tuple[int, int, str]:
        name = await run_sized(BIG, lambda: threading.current_thread().name)
        return await run_sized(10, threading.get_ident), await run_sized(BIG, threading.get_ident), name

    inline, threaded, name = asyncio.run(scenario())
    assert inline == main and threaded != main
    assert name.startswith("genesis-compute")  # its own threads, not the default executor's


def test_an_overrunning_computation_answers_unavailable_and_keeps_its_slot_until_it_ends() -> None:
    configure_compute(timeout_seconds=0.3, max_concurrent=1)
    release = threading.Event()

    async def scenario() -> list[str]:
        seen = []
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"did not finish within 0\.3 s") as slow:
            await run_sized(BIG, release.wait, 10)
        assert slow.value.component == "compute" and slow.value.retry_after == 1
        seen.append(f"first after {time.monotonic() - started:.1f}")
        # The overrunning thread still runs and holds the only slot: the next large call waits, then gives up.
        with pytest.raises(Unavailable, match="no computation slot"):
            await run_sized(BIG, lambda: "never")
        release.set()
        await asyncio.sleep(0.1)  # the thread ends and frees its slot
        seen.append(await run_sized(BIG, lambda: "ran"))
        seen.append(await run_sized(10, lambda: "inline needs no slot"))
        return seen

    first, ran, inline = asyncio.run(scenario())
    assert first in ("first after 0.3", "first after 0.4") and ran == "ran" and inline == "inline needs no slot"


def test_at_most_max_concurrent_large_computations_run_at_once() -> None:
    configure_compute(timeout_seconds=10, max_concurrent=2)
    running, peak, lock = 0, 0, threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def scenario() -> None:
        await asyncio.gather(*(run_sized(BIG, work) for _ in range(8)))

    asyncio.run(scenario())
    assert peak == 2


def test_a_failure_after_the_timeout_is_retrieved_not_reported_as_lost() -> None:
    configure_compute(timeout_seconds=0.1, max_concurrent=1)

    def fail_late() -> None:
        time.sleep(0.3)
        raise ValueError("late")

    async def scenario() -> None:
        with pytest.raises(Unavailable):
            await run_sized(BIG, fail_late)
        await asyncio.sleep(0.4)  # the late exception is consumed by the slot's release callback

    asyncio.run(scenario())  # pytest turns an unretrieved-exception warning into an error
