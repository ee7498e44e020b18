"""The group-commit writer: many callers, one chain, nothing acknowledged before it is durable."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from genesis.audit.chain import PendingLink
from genesis.audit.checkpoints import load_or_create_signing_key
from genesis.audit.events import AuditEvent, new_event
from genesis.audit.heads import HeadMaker, log_signer
from genesis.audit.store import AuditStore
from genesis.audit.trail import TrustedKeys, verify_store
from genesis.audit.writer import AuditWriter
from genesis.errors import Unavailable
from genesis.storage.audit_sql import open_audit_store
from tests.audit import workers


class FlakyStore:
    """Delegates to a real store but refuses appends while ``down`` is set."""

    def __init__(self, inner: AuditStore) -> None:
        self.inner = inner
        self.down = threading.Event()

    def append(self, events: Sequence[AuditEvent | PendingLink]) -> list[AuditEvent]:
        if self.down.is_set():
            raise OSError(28, "No space left on device")
        return self.inner.append(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_concurrent_submitters_get_a_gapless_chain(store: AuditStore, heads: HeadMaker, keys: TrustedKeys) -> None:
    results: list[list[int]] = []

    def work(k: int) -> None:
        tickets = [writer.submit(new_event("test.thread", actor=f"t{k}", message=str(i))) for i in range(250)]
        results.append([t.wait(30).seq for t in tickets])

    with AuditWriter(store, batch_max=100, heads=heads) as writer:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seqs = sorted(s for chunk in results for s in chunk)
    assert seqs == list(range(1, 1001))
    assert all(chunk == sorted(chunk) for chunk in results)  # one submitter's events stay in order
    report = verify_store(store, keys=keys)
    assert report.ok and report.events_checked == 1000 and report.covered_seq == 1000  # the shutdown head


def test_write_returns_the_committed_event(store: AuditStore) -> None:
    with AuditWriter(store) as writer:
        committed = writer.write(new_event("test.one", metadata={"k": 1}))
    assert committed.seq == 1 and committed.hash and committed.metadata == {"k": 1}
    assert store.get(committed.event_id) == committed


def test_a_failing_store_fails_the_waiters_and_the_writer_recovers(store: AuditStore) -> None:
    flaky = FlakyStore(store)
    with AuditWriter(flaky) as writer:
        assert writer.write(new_event("test.before")).seq == 1
        flaky.down.set()
        tickets = [writer.submit(new_event("test.during")) for _ in range(20)]
        for ticket in tickets:
            with pytest.raises(Unavailable) as caught:
                ticket.wait(10)
            assert isinstance(caught.value.__cause__, OSError)
        flaky.down.clear()
        assert writer.write(new_event("test.after")).seq == 2
    assert [row[4] for row in store.iter_rows()] == ["test.before", "test.after"]
    assert verify_store(store).ok


def test_write_async_resolves_on_the_event_loop(store: AuditStore) -> None:
    async def main() -> list[int]:
        events = [writer.write_async(new_event("test.async", message=str(i))) for i in range(50)]
        return [e.seq for e in await asyncio.gather(*events)]

    with AuditWriter(store) as writer:
        seqs = asyncio.run(main())
    assert sorted(seqs) == list(range(1, 51))


def test_write_async_raises_when_the_store_fails(store: AuditStore) -> None:
    flaky = FlakyStore(store)
    flaky.down.set()

    async def main() -> None:
        await writer.write_async(new_event("test.async"))

    with AuditWriter(flaky) as writer, pytest.raises(Unavailable):
        asyncio.run(main())


def test_close_drains_the_queue_and_refuses_later_submissions(store: AuditStore, heads: HeadMaker) -> None:
    writer = AuditWriter(store, heads=heads)
    tickets = [writer.submit(new_event("test.drain")) for _ in range(300)]
    writer.close()
    assert [t.done() for t in tickets] == [True] * 300
    assert store.head().seq == 300
    latest = store.latest_head()
    assert latest is not None and (latest.size, latest.reason) == (300, "shutdown")
    with pytest.raises(Unavailable):
        writer.submit(new_event("test.late"))


def test_a_head_is_made_on_schedule_when_events_exist_once_per_interval_for_all_writers(
    store: AuditStore, heads: HeadMaker, keys: TrustedKeys
) -> None:
    interval = 0.3
    twin = HeadMaker(store, heads.signer, head_log=heads.head_log, interval_seconds=interval)  # a second worker
    heads.interval_us = int(interval * 1_000_000)
    with AuditWriter(store, heads=heads, head_interval=interval) as one, \
            AuditWriter(store, heads=twin, head_interval=interval) as two:
        for round_ in range(3):
            for writer in (one, two):
                writer.write(new_event("test.scheduled", message=str(round_)))
            size = store.head().seq
            assert _wait_for(lambda: (h := store.latest_head()) is not None and h.size >= size)  # noqa: B023
    made = store.heads()
    periodic = [h for h in made if h.reason == "periodic"]
    assert periodic, made
    gaps = [b.created_at_us - a.created_at_us for a, b in itertools.pairwise(made) if b.reason == "periodic"]
    assert all(gap >= interval * 1_000_000 for gap in gaps), gaps  # one cadence for both writers
    assert len({h.size for h in made}) == len(made)  # never two heads for one size
    assert verify_store(store, keys=keys).ok


def test_no_head_is_made_when_nothing_new_was_appended(store: AuditStore, heads: HeadMaker) -> None:
    assert heads.make("periodic") is None and heads.make("startup") is None  # an empty trail
    store.append([new_event("test.one")])
    first = heads.make("startup")
    assert first is not None and first.size == 1
    heads.interval_us = 0
    assert heads.make("periodic") is None and heads.make("shutdown") is None  # nothing since
    assert store.heads() == [first]


def _wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_ticket_times_out_without_claiming_success(store: AuditStore) -> None:
    gate = threading.Event()

    class SlowStore(FlakyStore):
        def append(self, events: Sequence[AuditEvent | PendingLink]) -> list[AuditEvent]:
            gate.wait(10)
            return self.inner.append(events)

    with AuditWriter(SlowStore(store)) as writer:
        ticket = writer.submit(new_event("test.slow"))
        with pytest.raises(Unavailable, match="timed out"):
            ticket.wait(0.05)
        gate.set()
        assert ticket.wait(10).seq == 1


@pytest.mark.slow
def test_two_processes_with_their_own_writers_build_one_chain(sqlite_url: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    keys = str(tmp_path / "keys")
    with ctx.Pool(2) as pool:
        counts = pool.starmap(
            workers.append_with_own_writer, [(sqlite_url, 400, "p1", keys), (sqlite_url, 400, "p2", keys)]
        )
    assert counts == [400, 400]
    store = open_audit_store(sqlite_url)
    try:
        actors = [row[6] for row in store.iter_rows()]
        assert len(actors) == 800 and actors.count("p1") == 400
        log = TrustedKeys(log_signer(load_or_create_signing_key(Path(keys)), "genesis.test/audit").verifier)
        report = verify_store(store, keys=log)
        assert report.ok and report.last_seq == 800 and report.covered_seq == 800  # the last writer's shutdown head
    finally:
        store.close()


def test_the_writer_exports_its_metrics(store: AuditStore) -> None:
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("genesis_audit_batch_size_count") or 0.0
    with AuditWriter(store, batch_max=10) as writer:
        for ticket in [writer.submit(new_event("test.metrics")) for _ in range(25)]:
            ticket.wait(10)
        assert REGISTRY.get_sample_value("genesis_audit_queue_depth") == 0.0
    assert REGISTRY.get_sample_value("genesis_audit_chain_head_seq") == 25.0
    assert (REGISTRY.get_sample_value("genesis_audit_batch_size_count") or 0.0) - before >= 3
    assert REGISTRY.get_sample_value("genesis_audit_commit_seconds_count") is not None
    assert REGISTRY.get_sample_value("genesis_audit_write_failures_total") is not None
