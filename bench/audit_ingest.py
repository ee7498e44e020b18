"""Figure 1, audit ingestion: ``log_action`` at AUDIT level into the SQLite audit store.

Four threads call ``log_action`` and then wait on every ticket (each wait returns
only once that event's batch is committed with ``synchronous=FULL``), under the
logging pipeline that ``setup_logging`` installs (JSON lines to rotating and daily
files). Anchors measured in the same run: the original handler (one connection,
INSERT and commit per record) and stdlib logging of JSON lines to a plain file,
both from four threads; and, for the caller-side cost of a fire-and-forget log
line, stdlib ``QueueHandler`` + ``QueueListener``.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core import Figure, Scale, Target
from bench.legacy import AUDIT_LEVEL, JsonLineFormatter, SQLiteAuditHandler

THREADS = 4
META: dict[str, Any] = {"symbol": "BTC/USD", "side": "buy", "quantity": 1.5, "order_id": 123456}


def threaded_rate(n: int, work: Callable[[int, int], object]) -> float:
    """Events per second of ``THREADS`` threads each running ``work(thread_index, n // THREADS)``."""
    per = n // THREADS
    barrier = threading.Barrier(THREADS + 1)

    def body(i: int) -> None:
        barrier.wait()
        work(i, per)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return per * THREADS / (time.perf_counter() - began)


def legacy_rate(tmp: Path, seconds: float) -> float:
    """The original handler from four threads, for about ``seconds`` (it is slow)."""
    logger = logging.getLogger("bench.legacy")
    logger.propagate = False
    logger.setLevel(AUDIT_LEVEL)
    handler = SQLiteAuditHandler(tmp / "legacy.db")
    logger.addHandler(handler)
    try:
        logger.log(AUDIT_LEVEL, "warm-up", extra={"user": "bench", "metadata": META})
        began = time.perf_counter()
        logger.log(AUDIT_LEVEL, "probe", extra={"user": "bench", "metadata": META})
        one = time.perf_counter() - began
        n = max(THREADS * 10, min(20_000, int(seconds / max(one, 1e-5))))

        def work(i: int, per: int) -> None:
            for _ in range(per):
                logger.log(AUDIT_LEVEL, "order submitted", extra={"user": f"trader-{i}", "metadata": META})

        return threaded_rate(n, work)
    finally:
        logger.removeHandler(handler)
        handler.close()


def stdlib_file_rate(tmp: Path, n: int) -> float:
    """stdlib logging of JSON lines to a plain file from four threads."""
    logger = logging.getLogger("bench.stdlib")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(tmp / "stdlib.log")
    handler.setFormatter(JsonLineFormatter())
    logger.addHandler(handler)
    try:

        def work(i: int, per: int) -> None:
            for _ in range(per):
                logger.log(AUDIT_LEVEL, "order submitted", extra={"user": f"trader-{i}", "metadata": META})

        return threaded_rate(n, work)
    finally:
        logger.removeHandler(handler)
        handler.close()


class GenesisAudit:
    """A SQLite audit store, its writer and recorder, and ``setup_logging`` on a temp data dir, as a server has them."""

    def __init__(self, tmp: Path) -> None:
        import sqlalchemy

        from genesis import audit
        from genesis.audit import AuditRecorder, AuditWriter
        from genesis.audit.checkpoints import load_or_create_signing_key
        from genesis.audit.heads import HeadMaker, log_signer
        from genesis.audit.logging import setup_logging
        from genesis.config import Settings
        from genesis.storage.audit_sql import open_audit_store, sqlite_append_only_ddl
        from genesis.storage.models import metadata

        data = tmp / "genesis"
        data.mkdir()
        url = f"sqlite:///{data / 'genesis.db'}"
        engine = sqlalchemy.create_engine(url)
        metadata.create_all(engine)
        with engine.begin() as conn:
            for ddl in sqlite_append_only_ddl():
                conn.exec_driver_sql(ddl)
        engine.dispose()
        self.settings = Settings(data_dir=data, database_url=url, log_console=False, log_level="INFO",
                                 redis_url=None, audit_hmac_key=None)
        self.store = open_audit_store(url)
        self.logging = setup_logging(self.settings)
        heads = HeadMaker(self.store, log_signer(load_or_create_signing_key(data)), head_log=data / "audit-heads.log")
        self.writer = AuditWriter(self.store, heads=heads)
        audit.configure(recorder=AuditRecorder(self.writer), store=self.store)

    def close(self) -> None:
        from genesis import audit

        audit.configure(recorder=None, store=None)
        self.writer.close()
        self.logging.close()
        self.store.close()


def writer_rate(gen: GenesisAudit, n: int) -> float:
    """The API's path (``new_event`` + ``AuditWriter.submit``) from four threads; every ticket waited on."""
    from genesis.audit import new_event

    writer = gen.writer

    def work(i: int, per: int) -> None:
        actor, cid = f"trader-{i}", f"bench-{i}"
        tickets = [
            writer.submit(new_event("strategy.calculate", actor=actor, message="POST /strategy/calculate -> 200",
                                    metadata=META, correlation_id=cid, request_id=cid, source_ip="127.0.0.1",
                                    method="POST", path="/strategy/calculate", status=200))
            for _ in range(per)
        ]
        for ticket in tickets:
            ticket.wait(120.0)

    return threaded_rate(n, work)


def genesis_rate(n: int) -> float:
    """``log_action`` AUDIT events from four threads; every ticket waited on (durable)."""
    from genesis.audit import AUDIT, log_action

    def work(i: int, per: int) -> None:
        user = f"trader-{i}"
        tickets = [log_action(AUDIT, "order submitted", user=user, metadata=META, action="order.submit")
                   for _ in range(per)]
        for ticket in tickets:
            assert ticket is not None
            ticket.wait(120.0)

    return threaded_rate(n, work)


def caller_costs(gen: GenesisAudit, tmp: Path, calls: int, rounds: int) -> dict[str, float]:
    """Best caller-side microseconds per call: Genesis log line, Genesis audit submit, stdlib QueueHandler."""
    from genesis.audit import AUDIT, log_action

    q: queue.Queue[logging.LogRecord] = queue.Queue()
    file_handler = logging.FileHandler(tmp / "queue.log")
    file_handler.setFormatter(JsonLineFormatter())
    listener = logging.handlers.QueueListener(q, file_handler)
    std = logging.getLogger("bench.queue")
    std.propagate = False
    std.setLevel(logging.INFO)
    qh = logging.handlers.QueueHandler(q)
    std.addHandler(qh)
    listener.start()
    best = {"genesis_line": float("inf"), "genesis_submit": float("inf"), "queue_handler": float("inf")}
    try:
        for _ in range(rounds):
            began = time.perf_counter()
            for _ in range(calls):
                log_action(logging.INFO, "cache refreshed", user="svc", metadata=META)
            best["genesis_line"] = min(best["genesis_line"], (time.perf_counter() - began) / calls)
            gen.logging.flush(30.0)

            began = time.perf_counter()
            for _ in range(calls):
                std.info("cache refreshed", extra={"user": "svc", "metadata": META})
            best["queue_handler"] = min(best["queue_handler"], (time.perf_counter() - began) / calls)
            q.join()

            began = time.perf_counter()
            tickets = [log_action(AUDIT, "order submitted", user="svc", metadata=META, action="order.submit")
                       for _ in range(calls)]
            best["genesis_submit"] = min(best["genesis_submit"], (time.perf_counter() - began) / calls)
            for ticket in tickets:
                assert ticket is not None
                ticket.wait(60.0)
            gen.logging.flush(30.0)
    finally:
        listener.stop()
        std.removeHandler(qh)
        file_handler.close()
    return {k: v * 1e6 for k, v in best.items()}


def run(scale: Scale) -> list[Figure]:
    n = scale.pick(200_000, 2_000)
    rounds = scale.pick(2, 1)
    with tempfile.TemporaryDirectory(prefix="genesis-bench-") as name:
        tmp = Path(name)
        legacy = legacy_rate(tmp, scale.pick(4.0, 0.2))
        stdlib = stdlib_file_rate(tmp, scale.pick(100_000, 1_000))
        gen = GenesisAudit(tmp)
        try:
            genesis_rate(scale.pick(20_000, 400))  # warm-up: connections, caches, checkpoints
            via_log_action = max(genesis_rate(n) for _ in range(rounds))
            via_writer = max(writer_rate(gen, n) for _ in range(rounds))
            costs = caller_costs(gen, tmp, scale.pick(5_000, 200), scale.pick(5, 1))
        finally:
            gen.close()
        stdlib = max(stdlib, stdlib_file_rate(tmp, scale.pick(100_000, 1_000)))
    note = f"{THREADS} threads, {n:,} events per round, best of {rounds}; every ticket waited on"
    return [
        Figure("audit ingest: log_action(AUDIT), durable", via_log_action, "events/s", "original handler", legacy,
               "events/s", Target("value", ">=", 50_000, "events/s"), note=note + "; includes its JSON log line"),
        Figure("audit ingest: log_action vs original handler", via_log_action, "events/s", "original handler",
               legacy, "events/s", Target("ratio", ">=", 70)),
        Figure("audit ingest: log_action vs stdlib JSON file", via_log_action, "events/s",
               "stdlib JSON lines to file", stdlib, "events/s", Target("ratio", ">=", 2)),
        Figure("audit ingest: API path (new_event + submit), durable", via_writer, "events/s",
               "stdlib JSON lines to file", stdlib, "events/s", Target("value", ">=", 50_000, "events/s"),
               note="what the recorder does per request; no log line"),
        Figure("log line caller cost (log_action INFO)", costs["genesis_line"], "us/call",
               "stdlib QueueHandler", costs["queue_handler"], "us/call", Target("ratio", "<=", 0.5)),
        Figure("audit event caller cost (log_action AUDIT, no wait)", costs["genesis_submit"], "us/call",
               "stdlib QueueHandler", costs["queue_handler"], "us/call"),
    ]
