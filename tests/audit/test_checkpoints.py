"""Checkpoint keys and signatures: stored outside the database, created once, race-safe."""

from __future__ import annotations

import hashlib
import multiprocessing
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from genesis.audit.checkpoints import (
    SIGNING_KEY_FILE,
    CheckpointSigner,
    checkpoint_is_valid,
    checkpoint_payload,
    export_public_key,
    key_id,
    load_public_key,
    trusted_keys,
)
from tests.audit import workers


def test_the_signing_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = CheckpointSigner.from_data_dir(tmp_path)
    path = tmp_path / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert CheckpointSigner.from_data_dir(tmp_path).key_id == first.key_id
    assert not list(tmp_path.glob(".*.tmp"))


def test_concurrent_processes_agree_on_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        ids = pool.map(workers.create_signing_key, [str(tmp_path)] * 8)
    assert len(set(ids)) == 1
    assert ids[0] == CheckpointSigner.from_data_dir(tmp_path).key_id


def test_key_id_is_sha256_of_the_raw_public_key(tmp_path: Path) -> None:
    signer = CheckpointSigner.from_data_dir(tmp_path)
    raw = signer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signer.key_id == hashlib.sha256(raw).hexdigest()[:16] == key_id(signer.public_key)
    pem = export_public_key(tmp_path)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert key_id(load_public_key(pem)) == signer.key_id


def test_the_signature_covers_the_documented_payload(tmp_path: Path) -> None:
    signer = CheckpointSigner.from_data_dir(tmp_path)
    cp = signer.sign(7, "ab" * 32, reason="periodic", created_at_us=1_700_000_000_000_000)
    assert checkpoint_payload(7, "ab" * 32, 1_700_000_000_000_000) == (
        b"genesis-audit-checkpoint/v1\n7\n" + b"ab" * 32 + b"\n1700000000000000\n"
    )
    signer.public_key.verify(bytes.fromhex(cp.signature), checkpoint_payload(cp.seq, cp.head_hash, cp.created_at_us))
    keys = trusted_keys(signer.public_key)
    assert checkpoint_is_valid(cp, keys)
    assert not checkpoint_is_valid(type(cp)(8, cp.head_hash, cp.created_at_us, cp.key_id, cp.signature, ""), keys)
    assert checkpoint_is_valid(cp, None)  # no key given: signatures are not checked
