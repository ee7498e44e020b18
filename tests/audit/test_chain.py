"""The hash chain: each kind of tampering is caught, named, and located at its first bad seq."""

from __future__ import annotations

import tracemalloc

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genesis.audit.chain import verify_chain
from genesis.audit.checkpoints import CheckpointSigner
from genesis.audit.events import GENESIS_HASH, AuditEvent
from tests.audit.chainlib import build_chain, iter_chain, rechain, rehash, with_field

N = 40


def test_an_untouched_chain_verifies() -> None:
    report = verify_chain(build_chain(N))
    assert report.ok and report.events_checked == N and report.last_seq == N and report.kind is None


def test_events_and_rows_verify_alike() -> None:
    rows = build_chain(5)
    events = [AuditEvent.from_row(r) for r in rows]
    assert verify_chain(events).ok


@pytest.mark.parametrize("column", [1, 2, 4, 6, 11, 14, 15])
def test_changing_one_byte_of_any_column_is_modified_at_that_seq(column: int) -> None:
    rows = build_chain(N)
    value = rows[19][column]
    forged = value + 1 if isinstance(value, int) else value[:-1] + chr(ord(value[-1]) ^ 1)
    rows[19] = with_field(rows[19], column, forged)
    report = verify_chain(rows)
    assert (report.ok, report.kind, report.first_bad_seq) == (False, "modified", 20)
    assert report.last_seq == 19


def test_a_deleted_row_is_a_gap() -> None:
    rows = build_chain(N)
    del rows[9]
    report = verify_chain(rows)
    assert (report.kind, report.first_bad_seq) == ("deleted", 10)


def test_swapped_contents_are_reordered() -> None:
    rows = build_chain(N)
    a, b = rows[14], rows[15]
    rows[14], rows[15] = (a[0], *b[1:]), (b[0], *a[1:])
    report = verify_chain(rows)
    assert (report.kind, report.first_bad_seq) == ("reordered", 15)


def test_swapped_lines_of_an_export_are_reordered() -> None:
    rows = build_chain(N)
    rows[14], rows[15] = rows[15], rows[14]
    report = verify_chain(rows)
    assert (report.kind, report.first_bad_seq) == ("reordered", 15)


def test_a_duplicated_row_is_inserted() -> None:
    rows = build_chain(N)
    rows.insert(10, rows[9])
    report = verify_chain(rows)
    assert (report.kind, report.first_bad_seq) == ("inserted", 11)


def test_a_forged_row_with_recomputed_hash_is_caught_by_the_hmac_key() -> None:
    key = "k" * 32
    rows = build_chain(N, hmac_key=key)
    template = build_chain(1)[0]
    forged = rehash((25, *template[1:6], "mallory", *template[7:16], rows[23][17], ""))  # links to seq 24
    shifted = [(r[0] + 1, *r[1:]) for r in rows[24:]]
    tampered = [*rows[:24], forged, *shifted]
    assert not verify_chain(tampered, hmac_key=key).ok
    report = verify_chain(tampered, hmac_key=key)
    assert (report.kind, report.first_bad_seq) == ("inserted", 25)


def test_a_recomputed_chain_is_invisible_without_a_key_or_checkpoint() -> None:
    rows = build_chain(N)
    rows.insert(24, with_field(rows[24], 6, "mallory"))
    assert verify_chain(rechain(rows, 24)).ok  # why checkpoints exist


def test_a_signed_checkpoint_catches_a_recomputed_chain(signer: CheckpointSigner) -> None:
    rows = build_chain(N)
    cps = [signer.sign(10, rows[9][17], reason="periodic"), signer.sign(30, rows[29][17], reason="periodic")]
    rows.insert(24, with_field(rows[24], 6, "mallory"))
    report = verify_chain(rechain(rows, 24), checkpoints=cps, public_key=signer.public_key)
    assert (report.kind, report.first_bad_seq) == ("forged", 11)
    assert report.covered_seq == 10 and report.checkpoints_matched == 1


def test_tail_truncation_is_caught_by_the_latest_checkpoint(signer: CheckpointSigner) -> None:
    rows = build_chain(N)
    cps = [signer.sign(N, rows[-1][17], reason="shutdown")]
    report = verify_chain(rows[:31], checkpoints=cps, public_key=signer.public_key)
    assert (report.kind, report.first_bad_seq) == ("truncated", 32)
    assert verify_chain(rows, checkpoints=cps, public_key=signer.public_key).covered_seq == N


def test_checkpoints_with_bad_or_unknown_signatures_fail(signer: CheckpointSigner) -> None:
    rows = build_chain(N)
    good = signer.sign(N, rows[-1][17], reason="periodic")
    bad = type(good)(good.seq, good.head_hash, good.created_at_us + 1, good.key_id, good.signature, good.reason)
    report = verify_chain(rows, checkpoints=[bad], public_key=signer.public_key)
    assert (report.kind, report.first_bad_seq) == ("bad_checkpoint", N)
    other = CheckpointSigner(Ed25519PrivateKey.generate())
    assert verify_chain(rows, checkpoints=[good], public_key=other.public_key).kind == "bad_checkpoint"
    assert verify_chain(rows, checkpoints=[good], public_key=[other.public_key, signer.public_key]).ok


def test_verification_starts_at_an_archive_boundary(signer: CheckpointSigner) -> None:
    rows = build_chain(N)
    start, prev = rows[20][0], rows[19][17]
    assert verify_chain(rows[20:], start_seq=start, start_prev_hash=prev).ok
    report = verify_chain(rows[20:])  # not from genesis
    assert (report.kind, report.first_bad_seq) == ("deleted", 1)
    boundary = signer.sign(20, "ff" * 32, reason="archive-boundary")
    report = verify_chain(rows[20:], start_seq=start, start_prev_hash=prev, checkpoints=[boundary])
    assert (report.kind, report.first_bad_seq) == ("forged", 20)


def test_an_empty_chain_with_a_genesis_checkpoint_verifies(signer: CheckpointSigner) -> None:
    cps = [signer.sign(0, GENESIS_HASH, reason="periodic")]
    assert verify_chain([], checkpoints=cps, public_key=signer.public_key).ok


def test_verification_streams_in_constant_memory() -> None:
    tracemalloc.start()
    try:
        report = verify_chain(iter_chain(5000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.events_checked == 5000
    assert peak < 1_000_000
