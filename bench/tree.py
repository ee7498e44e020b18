"""Figure family "tree": the Merkle tree over the audit trail, its proofs and the offline verifier.

* **Append**: what the writer adds per event, the leaf hash of the canonical bytes it
  already holds plus :meth:`Frontier.append` (which reports the perfect nodes to store),
  against a bare SHA-256 of the same bytes. The issue's budget is 2 us per event.
* **Proofs** on a 1,000,000-leaf tree whose perfect nodes are in memory
  (:class:`MemoryNodes`): an inclusion proof of a random leaf in a random past size and a
  consistency proof between random sizes, each one batched read of O(log n) nodes. Anchor:
  verifying the same proof (what a client pays).
* **Offline verification** of 1,000,000 rows (:func:`verify_trail`: canonical bytes, chain
  link, leaf, frontier, signed heads), with the standard-library encoder and with orjson's,
  against a bare SHA-256 pass over the same canonical bytes.

Rows are sealed from 1,000 distinct prepared events cycled (they share their strings, so
a million rows take ~0.5 GB rather than ~1.2 GB; the chain does not care).

``python -m bench.tree [--tiny]`` prints the table; not yet part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.core import FULL, TINY, Figure, Scale, Target, interleaved
from genesis.audit.canonical import canonical_json
from genesis.audit.chain import ChainHasher, prepare, seal
from genesis.audit.events import GENESIS_HASH, canonical_bytes, new_event
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
    return Figure("tree append: leaf hash + frontier, per event", best["tree"] * per, "us",
                  "bare SHA-256 of the canonical bytes", best["bare"] * per, "us", Target("value", "<=", 2.0, "us"),
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


def verify_figures(rows: list[tuple[Any, ...]], repeat: int) -> list[Figure]:
    n = len(rows)
    signer = NoteSigner("bench.genesis/audit", _seeded_key())
    frontier = Frontier()
    heads = []
    marks = {n // 4, n // 2, n}
    for i, row in enumerate(rows, 1):
        frontier.push(leaf_hash(canonical_bytes(row)))
        if i in marks:
            heads.append(sign_checkpoint(signer, i, frontier.root()))

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
        Figure(f"offline verification of {n:,} rows (stdlib encoder)", n / best["stdlib"], "events/s",
               "bare SHA-256 pass over the same bytes", bare_rate, "events/s",
               Target("value", ">=", 500_000, "events/s"),
               note="chain + leaf + frontier + 3 signed heads; standard library and cryptography only"),
        Figure(f"offline verification of {n:,} rows (orjson encoder)", n / best["orjson"], "events/s",
               "bare SHA-256 pass over the same bytes", bare_rate, "events/s",
               Target("value", ">=", 500_000, "events/s"), note="the same, with genesis.audit.events.canonical_bytes"),
    ]  # fmt: skip


def _seeded_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_sha256(b"bench tree key").digest())


def run(scale: Scale) -> list[Figure]:
    n = scale.pick(1_000_000, 2_000)
    repeat = scale.pick(3, 1)
    rows = sealed_rows(n)
    figures = [append_figure(rows[: scale.pick(200_000, 2_000)], repeat)]
    figures += verify_figures(rows, scale.pick(2, 1))
    del rows
    gc.collect()
    figures += proof_figures(n, scale.pick(2_000, 50), repeat)
    return figures


def main() -> None:
    from bench.report import text_table

    parser = argparse.ArgumentParser(prog="python -m bench.tree", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (what the test suite runs)")
    args = parser.parse_args()
    print(text_table(run(TINY if args.tiny else FULL)))


if __name__ == "__main__":
    main()
