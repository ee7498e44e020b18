"""Concurrent audit appends from several processes into one store; prints events/s.

Used by the scale-out tests at a tiny size, and by hand for docs/deploy.md:
    python -m tests.scaleout.chain_load postgresql://postgres@127.0.0.1:5432/test --seconds 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time

from genesis.audit import AuditWriter, new_event
from genesis.storage.audit_sql import open_audit_store
from genesis.storage.migrate import upgrade_database


def _worker(url: str, seconds: float, threads: int, counter: mp.Value) -> None:  # type: ignore[valid-type]
    store = open_audit_store(url)
    writer = AuditWriter(store, batch_max=2000)
    done = [0] * threads
    deadline = time.monotonic() + seconds

    def load(index: int) -> None:
        while time.monotonic() < deadline:
            tickets = [writer.submit(new_event("load.event", actor=f"p{mp.current_process().pid}",
                                               correlation_id="load")) for _ in range(200)]
            for ticket in tickets:
                ticket.wait(30)
            done[index] += len(tickets)

    pool = [threading.Thread(target=load, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    writer.close()
    store.close()
    with counter.get_lock():  # type: ignore[attr-defined]
        counter.value += sum(done)  # type: ignore[attr-defined]


def run(url: str, *, processes: int, seconds: float, threads: int = 4) -> float:
    """Durable audit events per second committed by ``processes`` writers together."""
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    procs = [ctx.Process(target=_worker, args=(url, seconds, threads, counter)) for _ in range(processes)]
    started = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=seconds + 120)
    elapsed = time.monotonic() - started
    return float(counter.value) / max(elapsed, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    upgrade_database(args.url)
    for n in (1, 2, 4):
        print(f"{n} process(es): {run(args.url, processes=n, seconds=args.seconds):,.0f} durable events/s")


if __name__ == "__main__":
    main()
