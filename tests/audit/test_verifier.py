"""The offline verifier: every tampering case named at its first bad seq, proofs only against signed heads."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genesis.audit.canonical import canonical_json
from genesis.audit.events import GENESIS_HASH, canonical_bytes
from genesis.audit.merkle import Frontier, MemoryTree, ProofError, leaf_hash
from genesis.audit.note import NoteSigner, SignedCheckpoint, open_checkpoint, sign_checkpoint
from genesis.audit.verifier import check_consistency, check_inclusion, event_leaf, verify_trail
from tests.audit.chainlib import build_chain, iter_chain, rechain, with_field

ORIGIN = "genesis.test/audit"
LOG_KEY = Ed25519PrivateKey.generate()
LOG = NoteSigner(ORIGIN, LOG_KEY)
N = 60
HEAD_SIZES = (0, 10, 25, 40, N)


def tree_of(rows: Sequence[Sequence[Any]]) -> MemoryTree:
    tree = MemoryTree()
    for row in rows:
        tree.append(leaf_hash(canonical_json(row)))
    return tree


def heads_for(rows: Sequence[Sequence[Any]], sizes: Sequence[int] = HEAD_SIZES, signer: NoteSigner = LOG) -> list[str]:
    tree = tree_of(rows)
    return [sign_checkpoint(signer, size, tree.root(size)) for size in sizes]


def opened(note: str) -> SignedCheckpoint:
    return open_checkpoint(note, LOG.verifier)


ROWS = build_chain(N)
TREE = tree_of(ROWS)
HEADS = heads_for(ROWS)


def verify(rows: Sequence[Sequence[Any]], heads: Sequence[str] = HEADS, **kwargs: Any) -> Any:
    return verify_trail(rows, log_key=LOG.verifier, checkpoints=heads, **kwargs)


# --- an untouched trail -------------------------------------------------------------------------------


def test_an_untouched_trail_verifies_against_every_head() -> None:
    report = verify(ROWS)
    assert report.ok and report.kind is None and report.first_bad_seq is None
    assert (report.events_checked, report.last_seq, report.head_hash) == (N, N, ROWS[-1][17])
    assert report.root == TREE.root().hex()
    assert (report.checkpoints_matched, report.covered_size) == (len(HEAD_SIZES), N)


def test_the_log_key_may_be_given_as_vkey_text_and_heads_as_bytes() -> None:
    report = verify_trail(ROWS, log_key=LOG.verifier.vkey, checkpoints=[h.encode() for h in HEADS])
    assert report.ok and report.checkpoints_matched == len(HEADS)


def test_the_orjson_encoder_gives_the_same_report() -> None:
    assert verify(ROWS, encoder=canonical_bytes) == verify(ROWS)
    rows = list(ROWS)
    rows[30] = with_field(rows[30], 14, "changed")
    assert verify(rows, encoder=canonical_bytes) == verify(rows)


def test_an_empty_trail_verifies_against_the_size_0_head_only() -> None:
    assert verify([], HEADS[:1]).ok
    report = verify([], HEADS[:2])
    assert (report.ok, report.kind, report.first_bad_seq) == (False, "truncated", 1)


# --- the tampering table of docs/audit-format.md ------------------------------------------------------


@pytest.mark.parametrize("column", [1, 2, 4, 6, 11, 14, 15, 16, 17])
def test_a_changed_byte_in_any_column_is_modified_at_that_seq(column: int) -> None:
    rows = list(ROWS)
    value = rows[32][column]
    changed = value + 1 if isinstance(value, int) else value[:-1] + ("1" if value.endswith("0") else "0")
    rows[32] = with_field(rows[32], column, changed)
    report = verify(rows)
    assert (report.ok, report.first_bad_seq) == (False, 33)
    assert report.kind in ("modified", "inserted", "reordered")
    assert report.last_seq == 32 and report.covered_size == 25


def test_a_deleted_row_is_a_gap_and_swapped_rows_are_reordered() -> None:
    rows = list(ROWS)
    del rows[14]
    assert (verify(rows).kind, verify(rows).first_bad_seq) == ("deleted", 15)
    rows = list(ROWS)
    rows[20], rows[21] = rows[21], rows[20]
    assert (verify(rows).kind, verify(rows).first_bad_seq) == ("reordered", 21)


def test_a_rewritten_suffix_with_recomputed_hashes_breaks_the_next_signed_root() -> None:
    rows = list(ROWS)
    rows[29] = with_field(rows[29], 6, "mallory")
    report = verify(rechain(rows, 29))
    assert (report.ok, report.kind, report.first_bad_seq) == (False, "forged", 26)
    assert report.covered_size == 25 and report.last_seq == 40 and "after seq 25" in report.detail


def test_a_row_deleted_and_the_rest_renumbered_and_rechained_is_forged() -> None:
    rows = list(ROWS)
    del rows[11]
    report = verify(rechain(rows, 11))
    assert (report.kind, report.first_bad_seq) == ("forged", 11)


def test_a_spliced_row_is_inserted_with_the_hmac_key_and_forged_by_the_tree_without_it() -> None:
    key = "chain-key-for-tests"
    keyed = build_chain(N, hmac_key=key)
    heads = heads_for(keyed)
    assert verify(keyed, heads, hmac_key=key).ok
    forged = list(keyed)
    forged.insert(33, forged[32])  # a copy spliced in; a forger without the key cannot re-link it
    report = verify(forged, heads, hmac_key=key)
    assert (report.kind, report.first_bad_seq) == ("inserted", 34)
    plain = list(ROWS)
    plain.insert(33, plain[32])
    report = verify(rechain(plain, 33))
    assert (report.kind, report.first_bad_seq) == ("forged", 26)


def test_a_keyed_chain_does_not_verify_without_its_key() -> None:
    keyed = build_chain(5, hmac_key="k")
    report = verify(keyed, [])
    assert (report.ok, report.first_bad_seq) == (False, 1)


def test_a_cut_tail_is_truncated_when_a_head_covers_it() -> None:
    report = verify(ROWS[:52])
    assert (report.ok, report.kind, report.first_bad_seq) == (False, "truncated", 53)
    assert report.covered_size == 40 and report.events_checked == 52


def test_a_cut_tail_whose_database_heads_were_deleted_too_is_caught_by_a_published_head() -> None:
    database_heads = HEADS[:3]  # the attacker deleted events 41..60 and the heads of sizes 40 and 60
    assert verify(ROWS[:40], database_heads).ok
    published = [HEADS[-1]]  # one head kept outside the database (head log, witness, earlier client)
    report = verify(ROWS[:40], database_heads + published)
    assert (report.kind, report.first_bad_seq) == ("truncated", 41)


def test_a_rewrite_after_the_newest_head_is_not_detectable_without_a_key() -> None:
    """The documented limit: rows no signed head covers are protected by the chain alone."""
    rows = list(ROWS)
    rows[55] = with_field(rows[55], 6, "mallory")
    assert verify(rechain(rows, 55), HEADS[:4]).ok  # the newest head has size 40
    report = verify(rechain(rows, 55), HEADS)  # a fresher head (size 60) catches it
    assert (report.kind, report.first_bad_seq) == ("forged", 41)


# --- the heads themselves --------------------------------------------------------------------------------


def test_a_head_signed_by_another_key_is_a_bad_checkpoint() -> None:
    fresh = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())  # an export whose head was re-signed
    report = verify(ROWS, [*HEADS[:2], *heads_for(ROWS, [N], signer=fresh)])
    assert (report.ok, report.kind, report.first_bad_seq) == (False, "bad_checkpoint", None)
    assert "known key" in report.detail


def test_a_head_of_another_origin_or_a_malformed_head_is_a_bad_checkpoint() -> None:
    other = NoteSigner("genesis.test/other", LOG_KEY)  # same key, another name: another log
    assert verify(ROWS, heads_for(ROWS, [N], signer=other)).kind == "bad_checkpoint"
    assert verify(ROWS, ["not a note"]).kind == "bad_checkpoint"
    assert verify(ROWS, [HEADS[-1].replace("\n60\n", "\n060\n")]).kind == "bad_checkpoint"


def test_a_validly_signed_head_whose_root_does_not_match_the_events_is_forged() -> None:
    wrong = sign_checkpoint(LOG, 25, TREE.root(24))
    report = verify(ROWS, [HEADS[1], wrong])
    assert (report.kind, report.first_bad_seq) == ("forged", 11)


def test_two_signed_roots_for_one_size_fail_against_the_events() -> None:
    rewritten = rechain([*ROWS[:30], with_field(ROWS[30], 6, "x"), *ROWS[31:]], 30)
    fork = sign_checkpoint(LOG, 40, tree_of(rewritten).root(40))
    report = verify(ROWS, [*HEADS, fork])
    assert (report.ok, report.kind, report.first_bad_seq) == (False, "forged", 26)


# --- starting after an archived prefix ------------------------------------------------------------------


def test_a_trail_verifies_from_an_archive_boundary_with_the_frontier_there() -> None:
    start = 26
    frontier = Frontier.from_reader(TREE.nodes, start - 1)
    report = verify(ROWS[start - 1 :], start_seq=start, start_prev_hash=ROWS[start - 2][17], start_frontier=frontier)
    assert report.ok and report.events_checked == N - start + 1 and report.checkpoints_matched == 3
    # heads older than the boundary cover archived history and are skipped; the one at it is checked
    wrong = Frontier.from_reader(tree_of(ROWS[::-1]).nodes, start - 1)
    report = verify(ROWS[start - 1 :], start_seq=start, start_prev_hash=ROWS[start - 2][17], start_frontier=wrong)
    assert (report.kind, report.first_bad_seq) == ("forged", 25)
    with pytest.raises(ValueError, match="frontier"):
        verify(ROWS[start - 1 :], start_seq=start, start_prev_hash=ROWS[start - 2][17])
    with pytest.raises(ValueError, match="size 24, not 25"):
        verify(ROWS[start - 1 :], start_seq=start, start_frontier=Frontier.from_reader(TREE.nodes, 24))


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ({"start_seq": 0}, "positive integer"),
        ({"start_seq": "1"}, "positive integer"),
        ({"start_prev_hash": "zz" * 32}, "64 lower-case hex"),
        ({"start_prev_hash": GENESIS_HASH.upper()[:63]}, "64 lower-case hex"),
        ({"start_prev_hash": None}, "64 lower-case hex"),
    ],
)
def test_an_impossible_start_is_a_clear_error_not_a_crash(start: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        verify(ROWS, **start)


def test_verification_streams_in_constant_memory() -> None:
    peaks = []
    for n in (5_000, 20_000):
        tracemalloc.start()
        try:
            report = verify_trail(iter_chain(n), log_key=LOG.verifier)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert report.ok and report.events_checked == n
        peaks.append(peak)
    assert peaks[1] < 1_000_000 and peaks[1] < 2 * peaks[0]


# --- single proofs against signed heads ------------------------------------------------------------------


def test_an_event_proves_its_inclusion_in_any_head_that_covers_it() -> None:
    for note in HEADS[1:]:
        head = opened(note)
        for row in ROWS[: head.size]:
            check_inclusion(head, row, TREE.inclusion_proof(row[0] - 1, head.size))
    assert event_leaf(ROWS[4]) == (4, leaf_hash(canonical_json(ROWS[4])))


def test_inclusion_fails_for_a_changed_event_another_event_or_an_uncovered_one() -> None:
    head = opened(HEADS[2])  # size 25
    proof = TREE.inclusion_proof(7, 25)
    for row in (with_field(ROWS[7], 14, "changed"), ROWS[8], with_field(ROWS[7], 0, 9)):
        with pytest.raises(ProofError):
            check_inclusion(head, row, proof)
    with pytest.raises(ProofError, match="not in a tree of size 25"):
        check_inclusion(head, ROWS[30], TREE.inclusion_proof(30, 31))
    for bad in (with_field(ROWS[7], 0, 0), with_field(ROWS[7], 14, 1.5), with_field(ROWS[7], 0, "8")):
        with pytest.raises(ProofError, match="cannot be a leaf"):
            check_inclusion(head, bad, proof)


def test_the_size_3_proof_cannot_pass_as_size_4_because_size_and_root_come_signed_together() -> None:
    """Reference section 7 item 3, through the API: the size is never a separate argument."""
    tree = tree_of(ROWS[:4])
    proof = tree.inclusion_proof(0, 3)
    head3 = opened(sign_checkpoint(LOG, 3, tree.root(3)))
    check_inclusion(head3, ROWS[0], proof)
    claimed = sign_checkpoint(LOG, 3, tree.root(3)).replace("\n3\n", "\n4\n", 1)  # "size 4" with root 3
    with pytest.raises(ValueError, match="does not verify"):
        opened(claimed)
    head4 = opened(sign_checkpoint(LOG, 4, tree.root(4)))
    with pytest.raises(ProofError):
        check_inclusion(head4, ROWS[0], proof)


def test_a_later_head_proves_it_extends_an_earlier_one() -> None:
    heads = [opened(note) for note in HEADS]
    for old in heads:
        for new in heads:
            if new.size >= old.size:
                check_consistency(old, new, TREE.consistency_proof(old.size, new.size))


def test_rollback_fork_other_log_and_bad_proofs_are_refused() -> None:
    h10, h25, h40 = (opened(note) for note in HEADS[1:4])
    with pytest.raises(ProofError, match="rollback"):
        check_consistency(h25, h10, [])
    forked = rechain([*ROWS[:20], with_field(ROWS[20], 6, "x"), *ROWS[21:]], 20)
    fork25 = opened(sign_checkpoint(LOG, 25, tree_of(forked).root(25)))
    with pytest.raises(ProofError, match="fork"):
        check_consistency(h25, fork25, [])
    check_consistency(h10, fork25, tree_of(forked).consistency_proof(10, 25))  # the fork is after 10
    fork40 = opened(sign_checkpoint(LOG, 40, tree_of(forked).root(40)))
    with pytest.raises(ProofError):  # ... so it does not extend the trusted size-25 head
        check_consistency(h25, fork40, tree_of(forked).consistency_proof(25, 40))
    other = NoteSigner("genesis.test/other", LOG_KEY)
    foreign = open_checkpoint(sign_checkpoint(other, 40, TREE.root(40)), other.verifier)
    with pytest.raises(ProofError, match="two logs"):
        check_consistency(h25, foreign, TREE.consistency_proof(25, 40))
    good = TREE.consistency_proof(25, 40)
    for bad in (good[:-1], [*good[1:], good[0]], TREE.consistency_proof(24, 40), TREE.consistency_proof(25, 39)):
        with pytest.raises(ProofError):
            check_consistency(h25, h40, bad)


# --- dependencies -------------------------------------------------------------------------------------------

CHILD = """
import importlib.abc, json, sys, types
from pathlib import Path

AT_START = set(sys.modules)  # the interpreter's own start-up (site hooks)
CRYPTOGRAPHY = {"cryptography", "_cffi_backend", "_openssl"}  # its Rust extension registers the last two

ALLOWED = {"genesis", "genesis.audit", "genesis.audit.merkle", "genesis.audit.note", "genesis.audit.canonical",
           "genesis.audit.verifier"}

class OnlyStdlibAndCryptography(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in CRYPTOGRAPHY or name in ALLOWED:
            return None
        raise ImportError(f"the offline verifier imported {name}")

sys.meta_path.insert(0, OnlyStdlibAndCryptography())
try:
    import orjson  # a negative control: the blocker must work
except ImportError:
    pass
else:
    raise SystemExit("the import blocker let orjson through")
import genesis
package = types.ModuleType("genesis.audit")  # skip genesis/audit/__init__.py, which wires the whole subsystem
package.__path__ = [str(Path(genesis.__file__).parent / "audit")]
sys.modules["genesis.audit"] = package
from genesis.audit.verifier import verify_trail

job = json.loads(sys.stdin.read())
report = verify_trail([tuple(r) for r in job["rows"]], log_key=job["vkey"], checkpoints=job["heads"])
loaded = {m.partition(".")[0] for m in set(sys.modules) - AT_START}
third_party = sorted(loaded - set(sys.stdlib_module_names) - {"genesis"})
print(json.dumps({"report": report.to_dict(), "third_party": third_party}))
"""


def test_the_verifier_runs_with_nothing_but_the_standard_library_and_cryptography(tmp_path: Path) -> None:
    tampered = list(ROWS)
    tampered[29] = with_field(tampered[29], 6, "mallory")
    for rows, expected in ((ROWS, (True, None)), (rechain(tampered, 29), (False, 26))):
        job = json.dumps({"rows": [list(r) for r in rows], "vkey": LOG.verifier.vkey, "heads": HEADS})
        done = subprocess.run([sys.executable, "-c", CHILD], input=job, capture_output=True, text=True, timeout=120,
                              cwd=tmp_path, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert (out["report"]["ok"], out["report"]["first_bad_seq"]) == expected
        assert set(out["third_party"]) <= {"cryptography", "_cffi_backend", "_openssl"}, out["third_party"]
        assert "cryptography" in out["third_party"]


def test_genesis_hash_is_the_documented_genesis_value() -> None:
    from genesis.audit import verifier

    assert verifier.GENESIS_HASH == GENESIS_HASH
