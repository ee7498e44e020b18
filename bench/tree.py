"""Figure family "tree": the Merkle tree over the audit trail, its proofs and the offline verifiers.

* **Durable ingestion with the tree**: ``SqliteAuditStore.append`` of 1,000-event batches (the
  writer's batch under load; events prepared beforehand, as submitters do), with the tree
  (leaf hashes, frontier, one ``audit_tree`` row per batch) and without it (the append of the
  release before the tree, in a subclass), interleaved on two databases, best batch of each.
  The budget is 2 us per event added.
* **Append in memory**: the leaf hash plus :meth:`Frontier.append`, against a bare SHA-256.
* **Proofs** on a 1,000,000-leaf tree whose perfect nodes are in memory (:class:`MemoryNodes`).
  Anchor: verifying the same proof (what a client pays). The proof served from a 1,000,000-event
  store and over HTTP is in ``bench/audit_reads.py`` (which builds that store anyway).
* **Offline verification of a 1,000,000-event export file** (``genesis.audit.exportfile``,
  what ``genesis audit verify --file`` runs; standard library and ``cryptography`` only), against a
  bare SHA-256 pass over the same lines read the same way. Target 500,000 events/s.
* **Verification of rows already in memory** (:func:`verify_trail`, what a database check
  runs after its reads), with the standard-library encoder and with orjson's: informative.

Rows are sealed from 1,000 distinct prepared events cycled (they share their strings, so
a million rows take ~0.5 GB rather than ~1.2 GB; the chain does not care).

``python -m bench.tree [--tiny]`` prints the table; ``python -m bench`` includes it.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.core import FULL, TINY, Figure, Scale, Target, interleaved
from genesis.audit.canonical import canonical_json
from genesis.audit.chain import ChainHasher, prepare, seal
from genesis.audit.events import GENESIS_HASH, canonical_bytes, new_event
from genesis.audit.export import ExportStart, ExportTally, export_lines, write_export
from genesis.audit.exportfile import verify_export_file
from genesis.audit.merkle import (
    Frontier,
    MemoryNodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from genesis.audit.note import NoteSigner, sign_checkpoint
from genesis.audit.verifier import verify_trail

_sha256 = hashlib.sha256


def sealed_rows(n: int) -> list[tuple[Any, ...]]:
    """``n`` chained rows from 1,000 realistic prepared events, cycled."""
    actions = ("strategy.calculate", "prices.ingest", "auth.login", "backtests.run")
    links = [
        prepare(new_event(actions[i % 4], actor=f"user-{i % 50}", message=f"event {i}",
                          metadata={"i": i, "symbol": "BTC/USD"}, correlation_id=f"c-{i // 10}",
                          source_ip="127.0.0.1", method="POST", path="/strategy/calculate", status=200))
        for i in range(min(n, 1000))
    ]  # fmt: skip
    return seal([links[i % len(links)] for i in range(n)], 0, GENESIS_HASH, ChainHasher())


def ingest_figures(batches: int, batch: int) -> list[Figure]:
    """Durable appends of ``batch`` prepared events with and without the tree, interleaved, best of ``batches``."""
    from genesis.audit.chain import committed_event
    from genesis.storage.audit_sql import SqliteAuditStore
    from genesis.storage.migrate import upgrade_database

    class WithoutTree(SqliteAuditStore):
        """The append of the release before the tree: seal and insert, nothing else."""

        def _append_once(self, events: Any) -> Any:
            with self._guard(), self._write() as cur:
                head = self._head_in(cur)
                rows = seal(events, head.seq, head.hash, self._hasher)
                self._insert_rows(cur, rows)
            return [committed_event(item, row) for item, row in zip(events, rows, strict=True)]

    meta = {"symbol": "BTC/USD", "side": "buy", "quantity": 1.5, "order_id": 123456}

    def prepared() -> list[Any]:
        return [prepare(new_event("strategy.calculate", actor="trader-1", message="POST /strategy/calculate -> 200",
                                  metadata=meta, correlation_id="c-1", request_id="c-1", source_ip="127.0.0.1",
                                  method="POST", path="/strategy/calculate", status=200)) for _ in range(batch)]

    with tempfile.TemporaryDirectory(prefix="genesis-bench-tree-") as name:
        stores = {}
        for kind, cls in (("tree", SqliteAuditStore), ("bare", WithoutTree)):
            path = Path(name) / f"{kind}.db"
            upgrade_database(f"sqlite:///{path}")
            stores[kind] = cls(path)
        best = {"tree": float("inf"), "bare": float("inf")}
        added: list[float] = []
        try:
            for round_ in range(batches):
                took = {}
                for kind in ("tree", "bare") if round_ % 2 else ("bare", "tree"):  # each goes first half the time
                    events = prepared()
                    began = time.perf_counter()
                    stores[kind].append(events)
                    took[kind] = time.perf_counter() - began
                    best[kind] = min(best[kind], took[kind])
                added.append(took["tree"] - took["bare"])
            tree_size = stores["tree"].tree_root()[0]
        finally:
            for store in stores.values():
                store.close()
    assert tree_size == batches * batch
    per = 1e6 / batch
    # The median of the differences of neighbouring batches: the fsync of each commit varies by more than the
    # tree costs, and a shared machine's drift hits both of a pair alike.
    median_added = sorted(added)[len(added) // 2] * per
    note = (f"SQLite (WAL, synchronous=FULL), {batch:,}-event batches, {batches} pairs interleaved; the median "
            f"difference of neighbouring batches (best: {best['tree'] * per:.2f} vs {best['bare'] * per:.2f} us)")
    return [
        # A difference below the noise can come out negative: it is reported as 0 (the raw median is in extra).
        Figure("tree maintenance added to durable ingestion", max(0.0, median_added), "us/event",
               "durable ingestion without the tree", best["bare"] * per, "us/event",
               Target("value", "<=", 2.0, "us"), note=note,
               extra={"median_added_us": median_added, "with_tree_us": best["tree"] * per,
                      "without_tree_us": best["bare"] * per}),
        Figure("durable ingestion with the tree (store.append)", batch / best["tree"], "events/s",
               "the same without the tree", batch / best["bare"], "events/s", note=note),
    ]  # fmt: skip


def append_figure(rows: list[tuple[Any, ...]], repeat: int) -> Figure:
    # canonical_json, not orjson: orjson 3.13's small outputs each keep an ~8 KB allocation alive
    # (200,000 of them took 1.6 GB), which would also spread them over memory.
    bodies = [canonical_json(r) for r in rows]

    def tree() -> None:
        frontier = Frontier()
        append = frontier.append
        for body in bodies:
            append(_sha256(b"\x00" + body).digest())

    def bare() -> None:
        for body in bodies:
            _sha256(body).digest()

    best = interleaved({"tree": tree, "bare": bare}, repeat=repeat)
    per = 1e6 / len(bodies)
    return Figure("tree append in memory: leaf hash + frontier, per event", best["tree"] * per, "us",
                  "bare SHA-256 of the canonical bytes", best["bare"] * per, "us",
                  note=f"{len(bodies):,} events; the writer already holds the canonical bytes")  # fmt: skip


class CountingNodes(MemoryNodes):
    """Counts node reads (one batch per proof)."""

    __slots__ = ("batches", "reads")

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.batches = 0

    def read_nodes(self, ids: Any) -> list[bytes]:
        self.reads += len(ids)
        self.batches += 1
        return super().read_nodes(ids)


def proof_figures(n: int, queries: int, repeat: int) -> list[Figure]:
    nodes = CountingNodes()
    frontier = Frontier()
    for i in range(n):
        nodes.store(frontier.append(_sha256(b"\x00" + i.to_bytes(8, "big")).digest()))
    rng = random.Random(7)
    sizes = [rng.randint(n // 2, n) for _ in range(queries)]
    picks = [(rng.randrange(size), size) for size in sizes]
    pairs = [(rng.randint(1, size - 1), size) for size in sizes]
    roots = {size: root_at(nodes, size) for size in {*sizes, *(m for m, _ in pairs)}}
    inclusion = [inclusion_proof(nodes, i, size) for i, size in picks]
    consistency = [consistency_proof(nodes, m, size) for m, size in pairs]
    nodes.reads = nodes.batches = 0
    inclusion_proof(nodes, picks[0][0], picks[0][1])
    reads, batches = nodes.reads, nodes.batches

    def build_inclusion() -> None:
        for i, size in picks:
            inclusion_proof(nodes, i, size)

    def check_inclusion() -> None:
        for (i, size), proof in zip(picks, inclusion, strict=True):
            verify_inclusion(_sha256(b"\x00" + i.to_bytes(8, "big")).digest(), i, size, proof, roots[size])

    def build_consistency() -> None:
        for m, size in pairs:
            consistency_proof(nodes, m, size)

    def check_consistency() -> None:
        for (m, size), proof in zip(pairs, consistency, strict=True):
            verify_consistency(m, size, roots[m], roots[size], proof)

    best = interleaved({"bi": build_inclusion, "ci": check_inclusion, "bc": build_consistency,
                        "cc": check_consistency}, repeat=repeat)  # fmt: skip
    per = 1e3 / queries
    note = f"{n:,} leaves in memory, {queries} random leaves and past sizes"
    return [
        Figure(f"inclusion proof, {n:,}-leaf tree (build)", best["bi"] * per, "ms", "verifying it", best["ci"] * per,
               "ms", Target("value", "<", 1.0, "ms"), note=f"{note}; {reads} nodes in {batches} read",
               extra={"nodes_read": reads, "read_batches": batches}),
        Figure(f"consistency proof, {n:,}-leaf tree (build)", best["bc"] * per, "ms", "verifying it",
               best["cc"] * per, "ms", Target("value", "<", 1.0, "ms"), note=note),
    ]  # fmt: skip


def _heads(rows: list[tuple[Any, ...]], signer: NoteSigner, marks: set[int]) -> tuple[list[str], Frontier]:
    frontier = Frontier()
    heads = []
    for i, row in enumerate(rows, 1):
        frontier.push(leaf_hash(canonical_bytes(row)))
        if i in marks:
            heads.append(sign_checkpoint(signer, i, frontier.root()))
    return heads, frontier


def write_export_file(rows: list[tuple[Any, ...]], path: Path) -> str:
    """An export of ``rows`` ending with a head of its last event, as ``genesis audit export`` writes it; the vkey."""
    signer = NoteSigner("bench.genesis/audit", _seeded_key())
    heads, _ = _heads(rows, signer, {len(rows)})
    tally = ExportTally()
    lines = export_lines(rows, start=ExportStart(1, GENESIS_HASH, Frontier()), hash_algorithm="sha256",
                         origin=signer.name, vkey=signer.verifier.vkey, heads=heads, tally=tally)
    write_export(path, lines, tally=tally, tree_size=len(rows))
    return signer.verifier.vkey


def verify_file_child(path: str, vkey: str, repeat: int) -> None:
    """In a fresh process (no million rows in memory): best seconds of the verifier and of a bare pass, as JSON."""
    import json

    def bare() -> float:
        """Reading the file in 8 MiB blocks, splitting it into lines and hashing each: what any check must do."""
        began = time.perf_counter()
        with open(path, "rb") as handle:
            rest = b""
            while block := handle.read(8 << 20):
                parts = block.split(b"\n")
                parts[0] = rest + parts[0]
                rest = parts.pop()
                for line in parts:
                    _sha256(line).digest()
        return time.perf_counter() - began

    def verify() -> tuple[float, int]:
        began = time.perf_counter()
        report = verify_export_file(Path(path), log_key=vkey, workers=os.cpu_count() or 1)
        spent = time.perf_counter() - began
        assert report.ok and report.trail.covered_size == report.trail.events_checked, report
        return spent, report.trail.events_checked

    best = {"verify": float("inf"), "bare": float("inf")}
    events = 0
    for _ in range(repeat):
        spent, events = verify()
        best["verify"] = min(best["verify"], spent)
        best["bare"] = min(best["bare"], bare())
    print(json.dumps({**best, "events": events}))


def file_figure(rows: list[tuple[Any, ...]], repeat: int) -> Figure:
    """Offline verification of an export file of ``rows``, in a child process, against a bare SHA-256 pass."""
    import json
    import subprocess
    import sys

    n = len(rows)
    with tempfile.TemporaryDirectory(prefix="genesis-bench-export-") as name:
        path = Path(name) / "export.ndjson"
        vkey = write_export_file(rows, path)
        size = path.stat().st_size
        done = subprocess.run([sys.executable, "-m", "bench.tree", "--verify-file", str(path), vkey, str(repeat)],
                              capture_output=True, text=True, timeout=900, check=True,
                              cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["events"] == n, result
    return Figure(f"offline verification of a {n:,}-event export file", n / result["verify"], "events/s",
                  "bare SHA-256 pass over the same lines", n / result["bare"], "events/s",
                  Target("value", ">=", 500_000, "events/s"),
                  note=f"genesis audit verify --file in a fresh process (standard library and cryptography only, "
                       f"{os.cpu_count()} worker processes), one head at the end; {size / n:.0f} bytes per event "
                       f"line, read from the page cache; the anchor is one process; best of {repeat}")  # fmt: skip


def verify_figures(rows: list[tuple[Any, ...]], repeat: int) -> list[Figure]:
    n = len(rows)
    signer = NoteSigner("bench.genesis/audit", _seeded_key())
    heads, _ = _heads(rows, signer, {n // 4, n // 2, n})

    def bare() -> float:
        """Seconds of SHA-256 alone over every row's canonical bytes (encoded chunk by chunk, untimed)."""
        spent = 0.0
        for start in range(0, n, 100_000):
            bodies = [canonical_json(r) for r in rows[start : start + 100_000]]
            began = time.perf_counter()
            for body in bodies:
                _sha256(body).digest()
            spent += time.perf_counter() - began
        return spent

    def verify(encoder: Any) -> float:
        gc.collect()
        began = time.perf_counter()
        report = verify_trail(rows, log_key=signer.verifier, checkpoints=heads, encoder=encoder)
        spent = time.perf_counter() - began
        assert report.ok and report.events_checked == n and report.checkpoints_matched == 3, report
        return spent

    best: dict[str, float] = {"stdlib": float("inf"), "orjson": float("inf"), "bare": float("inf")}
    for _ in range(repeat):
        best["stdlib"] = min(best["stdlib"], verify(canonical_json))
        best["orjson"] = min(best["orjson"], verify(canonical_bytes))
        best["bare"] = min(best["bare"], bare())
    bare_rate = n / best["bare"]
    return [
        Figure(f"verification of {n:,} rows in memory (stdlib encoder)", n / best["stdlib"], "events/s",
               "bare SHA-256 pass over the same bytes", bare_rate, "events/s",
               note="what a database check does after its reads: re-encode, chain link, leaf, frontier, 3 heads"),
        Figure(f"verification of {n:,} rows in memory (orjson encoder)", n / best["orjson"], "events/s",
               "bare SHA-256 pass over the same bytes", bare_rate, "events/s",
               note="the same with genesis.audit.events.canonical_bytes (what genesis audit verify uses)"),
    ]  # fmt: skip


def _seeded_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_sha256(b"bench tree key").digest())


def run(scale: Scale) -> list[Figure]:
    n = scale.pick(1_000_000, 2_000)
    repeat = scale.pick(3, 1)
    figures = ingest_figures(scale.pick(60, 3), scale.pick(1_000, 50))
    rows = sealed_rows(n)
    figures.append(append_figure(rows[: scale.pick(200_000, 2_000)], repeat))
    figures.append(file_figure(rows, scale.pick(5, 1)))
    figures += verify_figures(rows, scale.pick(2, 1))
    del rows
    gc.collect()
    figures += proof_figures(n, scale.pick(2_000, 50), repeat)
    return figures


def main() -> None:
    from bench.report import text_table

    parser = argparse.ArgumentParser(prog="python -m bench.tree", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (what the test suite runs)")
    parser.add_argument("--verify-file", nargs=3, metavar=("PATH", "VKEY", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verify_file:
        verify_file_child(args.verify_file[0], args.verify_file[1], int(args.verify_file[2]))
        return
    print(text_table(run(TINY if args.tiny else FULL)))


if __name__ == "__main__":
    main()
