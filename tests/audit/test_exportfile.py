"""Offline verification of export files: every tampering case named at its first bad seq, a malicious file refused.

The files are written by ``genesis.audit.export`` from rows sealed in memory (no database), then edited the way
someone holding the file would; ``verify_export_file`` must name what was done and where.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genesis.audit.canonical import canonical_json
from genesis.audit.chain import ChainHasher, seal
from genesis.audit.checkpoints import CheckpointSigner
from genesis.audit.events import GENESIS_HASH, EventRow
from genesis.audit.export import ExportStart, ExportTally, export_lines, write_export
from genesis.audit.exportfile import ExportFormatError, verify_export_file
from genesis.audit.headlog import append_note
from genesis.audit.merkle import Frontier, MemoryTree, leaf_hash
from genesis.audit.note import NoteSigner, open_checkpoint, sign_checkpoint
from genesis.audit.verifier import check_inclusion
from tests.audit.chainlib import build_chain, make_event, rechain, with_field

KEY = Ed25519PrivateKey.generate()
LOG = NoteSigner("genesis.test/audit", KEY)
N = 60
ROWS = build_chain(N)


def tree_of(rows: Sequence[EventRow]) -> MemoryTree:
    tree = MemoryTree()
    for row in rows:
        tree.append(leaf_hash(canonical_json(row)))
    return tree


TREE = tree_of(ROWS)


def write(
    path: Path, rows: Sequence[EventRow] = ROWS, *, sizes: Sequence[int] = (N,), first: int = 1,
    tree: MemoryTree = TREE, proofs: bool = False, checkpoints: Sequence[Any] = (), signer: NoteSigner = LOG,
) -> Path:
    """An export of ``rows[first-1:]`` ending with heads of ``sizes`` (signed over ``tree``)."""
    part = rows[first - 1 :]
    start = ExportStart(first, rows[first - 2][17] if first > 1 else GENESIS_HASH,
                        Frontier.from_reader(tree.nodes, first - 1))
    notes = [sign_checkpoint(signer, size, tree.root(size)) for size in sizes]

    def source(indices: Sequence[int]) -> list[list[bytes]]:
        return [tree.inclusion_proof(i, sizes[-1]) for i in indices]

    tally = ExportTally()
    lines = export_lines(part, start=start, hash_algorithm="sha256", origin=LOG.name, vkey=LOG.verifier.vkey,
                         heads=notes, proofs=source if proofs else None, checkpoints=checkpoints, tally=tally)
    write_export(path, lines, tally=tally, tree_size=sizes[-1] if sizes else None)
    return path


def verify(path: Path, **kwargs: Any) -> Any:
    return verify_export_file(path, log_key=LOG.verifier, **kwargs)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def event_index(lines: list[bytes], seq: int) -> int:
    return next(i for i, line in enumerate(lines) if f'"seq":{seq},'.encode() in line and b'"type":"event"' in line)


def test_an_untouched_export_verifies_on_the_fast_path(tmp_path: Path) -> None:
    report = verify(write(tmp_path / "e.ndjson", sizes=(10, 40, N)))
    assert report.ok and report.format == "genesis-audit-export/2" and report.heads_in_file == 3
    trail = report.trail
    assert (trail.events_checked, trail.last_seq, trail.head_hash, trail.root) == (N, N, ROWS[-1][17],
                                                                                 TREE.root().hex())
    assert (trail.checkpoints_matched, trail.covered_size) == (3, N)
    assert verify(tmp_path / "e.ndjson", expected_digest="0" * 64).trail.kind == "modified"


@pytest.mark.parametrize("column", [1, 2, 4, 6, 11, 14, 15, 17])
def test_a_changed_value_in_any_column_is_found_at_its_seq(tmp_path: Path, column: int) -> None:
    path = write(tmp_path / "e.ndjson", sizes=(25, N))
    lines = lines_of(path)
    i = event_index(lines, 33)
    row = json.loads(lines[i])
    key = ["seq", "event_id", "occurred_at_us", "level", "action", "outcome", "actor", "source_ip", "user_agent",
           "method", "path", "status", "correlation_id", "request_id", "message", "metadata", "prev_hash",
           "hash"][column]  # fmt: skip
    value = row[key]
    row[key] = value + 1 if isinstance(value, int) else value[:-1] + ("1" if value.endswith("0") else "0")
    lines[i] = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    trail = verify(path).trail
    assert (trail.ok, trail.first_bad_seq) == (False, 33), trail
    assert trail.kind in ("modified", "inserted") and trail.covered_size == 25


def test_deleted_swapped_and_duplicated_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "e.ndjson", sizes=(N,))
    lines = lines_of(path)
    cases = {
        "deleted": [*lines[: event_index(lines, 15)], *lines[event_index(lines, 16) :]],
        "reordered": [*lines[: event_index(lines, 21)], lines[event_index(lines, 22)], lines[event_index(lines, 21)],
                      *lines[event_index(lines, 23) :]],
        "inserted": [*lines[: event_index(lines, 31)], lines[event_index(lines, 30)], *lines[event_index(lines, 31) :]],
    }  # fmt: skip
    expected = {"deleted": 15, "reordered": 21, "inserted": 31}
    for kind, edited in cases.items():
        path.write_bytes(b"".join(edited))
        trail = verify(path).trail
        assert (trail.kind, trail.first_bad_seq) == (kind, expected[kind]), (kind, trail)


def test_a_rewritten_suffix_with_recomputed_hashes_is_forged_after_the_last_matched_head(tmp_path: Path) -> None:
    forged = rechain([*ROWS[:29], with_field(ROWS[29], 6, "mallory"), *ROWS[30:]], 29)
    heads = [sign_checkpoint(LOG, size, TREE.root(size)) for size in (25, 40)]
    path = write(tmp_path / "e.ndjson", forged, sizes=(N,), tree=tree_of(forged))
    assert verify(path).ok  # the file's own head was signed over the rewrite: only a holder of the key can do that ...
    trail = verify(path, heads=heads).trail  # ... and the heads published before it (a head log) catch it
    assert (trail.kind, trail.first_bad_seq) == ("forged", 26)


def test_a_cut_tail_is_truncated_whether_or_not_the_head_and_trailer_remain(tmp_path: Path) -> None:
    path = write(tmp_path / "e.ndjson", sizes=(20, N))
    lines = lines_of(path)
    cut_events = [*lines[: event_index(lines, 51)], *lines[-3:]]  # heads and trailer kept
    path.write_bytes(b"".join(cut_events))
    trail = verify(path).trail
    assert (trail.kind, trail.first_bad_seq) == ("truncated", 51)
    cut_all = lines[: event_index(lines, 51)]  # the final head and trailer cut too
    path.write_bytes(b"".join(cut_all))
    assert verify(path).trail.kind == "truncated"
    published = [sign_checkpoint(LOG, N, TREE.root())]  # with a head kept elsewhere: cut at 51 exactly
    assert (verify(path, heads=published).trail.kind, verify(path, heads=published).trail.first_bad_seq) == (
        "truncated", 51)


def test_a_head_resigned_with_a_fresh_key_or_for_another_log_is_refused(tmp_path: Path) -> None:
    fresh = NoteSigner(LOG.name, Ed25519PrivateKey.generate())
    trail = verify(write(tmp_path / "e.ndjson", sizes=(N,), signer=fresh)).trail
    assert (trail.ok, trail.kind) == (False, "bad_checkpoint") and "head in the file" in trail.detail
    other = NoteSigner("genesis.test/other", KEY)
    assert verify(write(tmp_path / "o.ndjson", sizes=(N,), signer=other)).trail.kind == "bad_checkpoint"


def test_a_validly_signed_head_whose_root_does_not_match_the_events_is_forged(tmp_path: Path) -> None:
    path = write(tmp_path / "e.ndjson", sizes=(10,))
    wrong = sign_checkpoint(LOG, 40, TREE.root(39))
    trail = verify(path, heads=[wrong]).trail
    assert (trail.kind, trail.first_bad_seq) == ("forged", 11)


def test_heads_given_that_are_not_this_logs_are_counted_and_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "e.ndjson", sizes=(N,))
    foreign = sign_checkpoint(NoteSigner(LOG.name, Ed25519PrivateKey.generate()), N, TREE.root())
    report = verify(path, heads=[foreign, "torn\n\n— x y\n"])
    assert report.ok and report.unreadable_heads == 2 and report.heads_given == 0


def test_the_export_starting_after_an_archive_holds_its_frontier(tmp_path: Path) -> None:
    path = write(tmp_path / "e.ndjson", first=26, sizes=(25, N))
    report = verify(path)
    assert report.ok and report.trail.events_checked == 35 and report.trail.checkpoints_matched == 2
    header = json.loads(lines_of(path)[0])
    header["start_frontier"] = [base64.b64encode(b"\x00" * 32).decode()] * len(header["start_frontier"])
    lines = lines_of(path)
    lines[0] = json.dumps(header).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    trail = verify(path).trail
    assert (trail.kind, trail.first_bad_seq) == ("forged", 25)  # the head at the boundary does not match
    header["start_frontier"] = ["not base64"]
    lines[0] = json.dumps(header).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(ExportFormatError, match="start_frontier"):
        verify(path)


def test_line_separators_are_escaped_and_still_verify(tmp_path: Path) -> None:
    rows = seal([make_event(i, message=f"line\u2028sep\u2029para\x85next {i}") for i in range(8)], 0, GENESIS_HASH,
                ChainHasher())
    path = write(tmp_path / "e.ndjson", rows, sizes=(8,), tree=tree_of(rows))
    raw = path.read_bytes()
    assert b"\xe2\x80\xa8" not in raw and b"\\u2028" in raw and b"\\u0085" in raw
    assert verify(path).ok


def test_each_event_carries_a_proof_that_verifies_against_the_final_head(tmp_path: Path) -> None:
    path = write(tmp_path / "e.ndjson", sizes=(N,), proofs=True)
    assert verify(path).ok
    head = open_checkpoint(json.loads(lines_of(path)[-2])["note"], LOG.verifier)
    for line in lines_of(path)[1:-2]:
        obj = json.loads(line)
        row = tuple(obj[c] for c in ("seq", "event_id", "occurred_at_us", "level", "action", "outcome", "actor",
                                     "source_ip", "user_agent", "method", "path", "status", "correlation_id",
                                     "request_id", "message", "metadata", "prev_hash", "hash"))  # fmt: skip
        check_inclusion(head, row, [base64.b64decode(h) for h in obj["proof"]])


def test_chain_checkpoints_of_an_older_trail_are_held_too(tmp_path: Path) -> None:
    chain_signer = CheckpointSigner(KEY)
    cp = chain_signer.sign(30, ROWS[29][17], reason="periodic")
    path = write(tmp_path / "e.ndjson", sizes=(N,), checkpoints=[cp])
    assert verify(path).trail.checkpoints_matched == 2
    bad = chain_signer.sign(30, ROWS[28][17], reason="periodic")
    trail = verify(write(tmp_path / "b.ndjson", sizes=(N,), checkpoints=[bad])).trail
    assert (trail.kind, trail.first_bad_seq) == ("forged", 1)


def test_garbage_is_a_clear_error(tmp_path: Path) -> None:
    for content in (b"", b"not json\n", b'{"type":"header","format":"other"}\n', b'{"type":"header","format":'
                    b'"genesis-audit-export/2","start_seq":0,"start_prev_hash":"x"}\n'):
        (tmp_path / "g").write_bytes(content)
        with pytest.raises(ExportFormatError):
            verify(tmp_path / "g")


CHILD = """
import importlib.abc, json, sys

CRYPTOGRAPHY = {"cryptography", "_cffi_backend", "_openssl"}
ALLOWED = {"genesis", "genesis.audit", "genesis.audit.merkle", "genesis.audit.note", "genesis.audit.canonical",
           "genesis.audit.verifier", "genesis.audit.exportfile", "genesis.audit.headlog"}

class OnlyStdlibAndCryptography(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in CRYPTOGRAPHY or name in ALLOWED:
            return None
        raise ImportError(f"the offline verifier imported {name}")

sys.meta_path.insert(0, OnlyStdlibAndCryptography())
for forbidden in ("orjson", "typer", "sqlalchemy", "pydantic"):  # negative controls: the blocker must work
    try:
        __import__(forbidden)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the import blocker let {forbidden} through")
import runpy
sys.argv = ["exportfile", *sys.argv[1:]]
runpy.run_module("genesis.audit.exportfile", run_name="__main__")
"""


def test_an_export_verifies_in_a_process_that_cannot_import_anything_but_the_stdlib_and_cryptography(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "e.ndjson", sizes=(20, N))
    log = tmp_path / "heads.log"
    append_note(log, sign_checkpoint(LOG, N, TREE.root()))
    args = [sys.executable, "-c", CHILD, str(path), "--key", LOG.verifier.vkey, "--heads", str(log)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout)["ok"] is True
    lines = lines_of(path)
    path.write_bytes(b"".join([*lines[: event_index(lines, 41)], *lines[-3:]]))
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr + done.stdout
    out = json.loads(done.stdout)
    assert (out["ok"], out["kind"], out["first_bad_seq"]) == (False, "truncated", 41)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 8 events checked by worker processes, so that a 60-event file takes the parallel path."""
    from genesis.audit import exportfile

    monkeypatch.setattr(exportfile, "PARALLEL_MIN", 1)
    monkeypatch.setattr(exportfile, "_MIN_CHUNK_BITS", 3)


@pytest.mark.slow
def test_chunks_checked_in_worker_processes_report_exactly_what_the_walk_in_order_does(
    tmp_path: Path, small_chunks: None
) -> None:
    path = write(tmp_path / "e.ndjson", sizes=(7, 25, 40, N), checkpoints=[CheckpointSigner(KEY).sign(
        33, ROWS[32][17], reason="periodic")])
    from genesis.audit import exportfile

    confirmed: list[Any] = []
    original = exportfile._parallel

    def spy(*args: Any) -> Any:
        confirmed.append(original(*args))
        return confirmed[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exportfile, "_parallel", spy)
        parallel = verify(path, workers=2)
    in_order = verify(path)
    assert parallel.ok and parallel == in_order and parallel.trail.checkpoints_matched == 5
    assert confirmed[0] is not None and confirmed[0].size == N  # the workers' chunks confirmed every head
    lines = lines_of(path)
    for edit in ("modify", "cut", "forge"):
        edited = list(lines)
        if edit == "modify":
            i = event_index(edited, 45)
            edited[i] = edited[i].replace(b'"message":"event', b'"message":"Event', 1)
        elif edit == "cut":
            edited = [*edited[: event_index(edited, 51)], *edited[-5:]]
        else:
            forged = rechain([*ROWS[:29], with_field(ROWS[29], 6, "mallory"), *ROWS[30:]], 29)
            write(path, forged, sizes=(7, 25, 40, N), tree=tree_of(forged))
            edited = lines_of(path)
            edited[-6:-2] = lines[-6:-2]  # the genuine heads back over the forged rows
        path.write_bytes(b"".join(edited))
        assert verify(path, workers=2) == verify(path), edit
        assert not verify(path, workers=2).ok, edit
