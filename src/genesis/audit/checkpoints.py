"""Signed checkpoints: Ed25519 statements "the chain had head HASH at SEQ at time T".

The private key lives outside the database (``<data_dir>/audit-signing.key``,
PEM PKCS#8, mode 0600), so whoever can rewrite the tables cannot re-sign a
rewritten chain. The signed payload is specified in ``docs/audit-format.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from genesis.secretfile import create_once
from genesis.timeutil import now_us

SIGNING_KEY_FILE: Final = "audit-signing.key"
PAYLOAD_PREFIX: Final = "genesis-audit-checkpoint/v1"

PublicKeys = Ed25519PublicKey | Iterable[Ed25519PublicKey] | None
"""What a verifier accepts: one trusted key, several (rotation), or None (signatures not checked)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One row of ``audit_checkpoints``."""

    seq: int
    head_hash: str
    created_at_us: int
    key_id: str
    signature: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "created_at_us": self.created_at_us,
            "key_id": self.key_id,
            "signature": self.signature,
            "reason": self.reason,
        }


def checkpoint_payload(seq: int, head_hash: str, created_at_us: int) -> bytes:
    """The exact bytes signed: ``genesis-audit-checkpoint/v1\\n<seq>\\n<head_hash>\\n<created_at_us>\\n``."""
    return f"{PAYLOAD_PREFIX}\n{int(seq)}\n{head_hash}\n{int(created_at_us)}\n".encode("ascii")


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the 32 raw public-key bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM text of ``public_key``."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """Parse a PEM public key, refusing anything but Ed25519."""
    key = serialization.load_pem_public_key(pem.encode("ascii") if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """Return the checkpoint signing key in ``data_dir``, creating it (mode 0600) once.

    Several processes may start together: each writes a complete key to its own
    temporary file and ``os.link``s it into place; the first link wins and every
    process then reads the winner.
    """
    path = Path(data_dir) / SIGNING_KEY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        create_once(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def export_public_key(data_dir: Path) -> str:
    """PEM of the public half of the data dir's signing key (``genesis audit public-key``)."""
    return public_key_pem(load_or_create_signing_key(data_dir).public_key())


class CheckpointSigner:
    """Signs checkpoints with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> CheckpointSigner:
        return cls(load_or_create_signing_key(data_dir))

    def sign(self, seq: int, head_hash: str, *, reason: str, created_at_us: int | None = None) -> Checkpoint:
        """A checkpoint for head ``(seq, head_hash)``, timestamped now unless given."""
        at = now_us() if created_at_us is None else created_at_us
        signature = self._key.sign(checkpoint_payload(seq, head_hash, at)).hex()
        return Checkpoint(seq, head_hash, at, self.key_id, signature, reason[:32])


def trusted_keys(public_key: PublicKeys) -> Mapping[str, Ed25519PublicKey] | None:
    """Normalise a verifier's key argument to ``{key_id: key}`` (None: do not check)."""
    if public_key is None:
        return None
    keys = [public_key] if isinstance(public_key, Ed25519PublicKey) else list(public_key)
    return {key_id(k): k for k in keys}


def checkpoint_is_valid(checkpoint: Checkpoint, keys: Mapping[str, Ed25519PublicKey] | None) -> bool:
    """True when the signature verifies under the trusted key named by ``key_id``.

    With ``keys`` None, signatures are not checked and every checkpoint counts.
    """
    if keys is None:
        return True
    key = keys.get(checkpoint.key_id)
    if key is None:
        return False
    try:
        key.verify(
            bytes.fromhex(checkpoint.signature),
            checkpoint_payload(checkpoint.seq, checkpoint.head_hash, checkpoint.created_at_us),
        )
    except (InvalidSignature, ValueError):
        return False
    return True
