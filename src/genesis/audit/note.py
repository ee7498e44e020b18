"""Signed tree heads as C2SP signed notes: tlog-checkpoint v1.0.0 with Ed25519, witness cosignatures.

A checkpoint is the note text ``<origin>\\n<size>\\n<base64 root>\\n[extension lines]``
followed by an empty line and signature lines ``— <key name> <base64(key id || signature)>``
(signed-note v1.0.0). Witnesses add tlog-cosignature v1.0.1 lines (key type 0x04,
``key id || u64 big-endian time || signature`` over ``cosignature/v1\\ntime <T>\\n`` + text).
So the heads Genesis publishes are read by the transparency-dev tooling and witnesses
as they are; ``docs/audit-format.md`` ("Signed tree heads") specifies every byte.

Parsing is strict and follows ``golang.org/x/mod/sumdb/note``: signatures by unknown
keys are ignored, a known key whose signature fails rejects the whole note (repeated
lines too, which Go skips), a note no known key verifies is rejected, and at most
:data:`MAX_SIGNATURES` lines are read. The checkpoint body must re-encode identically
(canonical size and base64), and base64 anywhere must be canonical.

Standard library and ``cryptography`` only: the offline verifier is built on this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519: Final = 0x01
"""Signature type of a log's Ed25519 key (signed-note)."""
COSIGNATURE_V1: Final = 0x04
"""Signature type of a witness's Ed25519 cosignature key (tlog-cosignature)."""

MAX_SIGNATURES: Final = 100
"""Signature lines read from one note (the Go implementation's limit; the spec asks for at least 16)."""

SIGNATURE_PREFIX: Final = "\u2014 "  # EM DASH, space
MAX_TREE_SIZE: Final = (1 << 64) - 1

_SIZE: Final = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX8: Final = re.compile(r"[0-9a-f]{8}")
_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")  # control characters other than newline


class NoteError(ValueError):
    """A note or key that is malformed or does not verify (the message says which)."""


def _check_name(name: str, what: str = "key name") -> None:
    if not name or "+" in name or any(c.isspace() for c in name) or _CONTROL.search(name):
        raise NoteError(f"{what} {name!r} must be non-empty, without spaces, '+' or control characters")


def _b64decode(text: str, what: str) -> bytes:
    """Standard base64 that must re-encode identically (no stray padding bits, no whitespace)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def note_key_id(name: str, algorithm: int, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || algorithm || public_key)[:4]``: the key id of a note key."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([algorithm]) + public_key).digest()[:4]


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A trusted public key for notes: a log's (type 0x01) or a witness's (type 0x04)."""

    name: str
    key_id: bytes
    algorithm: int
    public_key: Ed25519PublicKey

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey, algorithm: int = ED25519) -> NoteVerifier:
        """The verifier of ``public_key`` under ``name``.

        Raises:
            NoteError: an invalid name or an unknown algorithm.
        """
        _check_name(name)
        if algorithm not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"unsupported key type 0x{algorithm:02x}")
        return cls(name, note_key_id(name, algorithm, _raw_public(public_key)), algorithm, public_key)

    @property
    def vkey(self) -> str:
        """``<name>+<hex key id>+<base64(type || public key)>``: the text form operators exchange."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([self.algorithm]) + _raw_public(self.public_key))}"


def parse_vkey(vkey: str) -> NoteVerifier:
    """Parse a verifier key ``<name>+<8 hex digits>+<base64(type || 32-byte Ed25519 key)>``.

    Raises:
        NoteError: malformed, an unsupported key type, or a key id that does not match the key.
    """
    name, _, rest = vkey.strip().partition("+")
    hex_id, _, key64 = rest.partition("+")
    _check_name(name)
    if not _HEX8.fullmatch(hex_id):
        raise NoteError("the key id of a vkey is 8 lower-case hex digits")
    key = _b64decode(key64, "the vkey's key")
    if len(key) != 33 or key[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("a vkey holds a type byte (0x01 or 0x04) and a 32-byte Ed25519 key")
    verifier = NoteVerifier(name, bytes.fromhex(hex_id), key[0], Ed25519PublicKey.from_public_bytes(key[1:]))
    if note_key_id(name, key[0], key[1:]) != verifier.key_id:
        raise NoteError(f"the key id {hex_id} does not match the key of {name!r}")
    return verifier


class NoteSigner:
    """Signs note texts with an Ed25519 private key under a key name (for a log: its origin)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.verifier = NoteVerifier.from_public_key(name, private_key.public_key(), ED25519)

    @property
    def name(self) -> str:
        return self.verifier.name

    def signature_line(self, text: str) -> str:
        """``— <name> <base64(key id || Ed25519(text))>\\n``."""
        sig = self._key.sign(text.encode("utf-8"))
        return f"{SIGNATURE_PREFIX}{self.name} {_b64(self.verifier.key_id + sig)}\n"


class CosignatureSigner:
    """A witness's key: cosigns checkpoints (tlog-cosignature v1.0.1)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.verifier = NoteVerifier.from_public_key(name, private_key.public_key(), COSIGNATURE_V1)

    def signature_line(self, text: str, timestamp: int) -> str:
        """The cosignature line stating "at ``timestamp`` (Unix seconds) this was the latest checkpoint"."""
        if type(timestamp) is not int or not 0 <= timestamp <= MAX_TREE_SIZE:
            raise NoteError("a cosignature time is an unsigned 64-bit number of seconds")
        sig = self._key.sign(cosignature_message(text, timestamp))
        payload = self.verifier.key_id + timestamp.to_bytes(8, "big") + sig
        return f"{SIGNATURE_PREFIX}{self.verifier.name} {_b64(payload)}\n"


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a witness signs: ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def default_origin(public_key: Ed25519PublicKey) -> str:
    """``genesis-audit/<first 16 hex digits of SHA-256(public key)>``: unique per signing key.

    The key id part is the ``key_id`` of the chain checkpoints of ``docs/audit-format.md`` section 4.
    """
    return f"genesis-audit/{hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]}"


# --- notes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name and id and the bytes after the id."""

    name: str
    key_id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified witness cosignature: ``witness`` saw the checkpoint as its latest at ``timestamp``."""

    witness: str
    key_id: bytes
    timestamp: int


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose signatures were checked: the text and who verifiably signed it."""

    text: str
    signatures: tuple[NoteSignature, ...]
    """Valid signatures by known keys (type 0x01), in note order."""
    cosignatures: tuple[Cosignature, ...]
    """Valid cosignatures by known witness keys (type 0x04), in note order."""
    unverified: tuple[NoteSignature, ...]
    """Signatures by unknown keys: kept (and re-emitted), never trusted."""


def _note_text(note: str | bytes) -> str:
    if isinstance(note, bytes):
        try:
            return note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("a note is UTF-8 text") from None
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("a note is UTF-8 text") from None
    return note


def open_note(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> OpenedNote:
    """Split a signed note, and verify every signature line by a known key.

    Raises:
        NoteError: malformed (control characters, no signature block, a bad line, more than
            :data:`MAX_SIGNATURES` lines), a known key's signature that fails, or no valid signature.
    """
    msg = _note_text(note)
    if _CONTROL.search(msg):
        raise NoteError("a note may contain no control character other than newline")
    split = msg.rfind("\n\n")
    if split < 0:
        raise NoteError("a note ends with an empty line and its signature lines")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("a note's signature block ends with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note has at most {MAX_SIGNATURES} signature lines")
    known = {(v.name, v.key_id): v for v in verifiers}
    signed = text.encode("utf-8")
    seen: set[tuple[str, bytes]] = set()
    signatures: list[NoteSignature] = []
    cosignatures: list[Cosignature] = []
    unverified: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash and a space")
        name, _, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        _check_name(name)
        raw = _b64decode(b64, f"the signature of {name!r}")
        if len(raw) < 5:
            raise NoteError(f"the signature of {name!r} is too short")
        sig = NoteSignature(name, raw[:4], raw[4:])
        verifier = known.get((name, sig.key_id))
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        # Every line by a known key is checked, repeats too (Go skips repeats: a bad line after a good
        # one would pass there); a repeated valid line counts once.
        if verifier.algorithm == ED25519:
            if not _verifies(verifier.public_key, sig.data, signed):
                raise NoteError(f"the signature of {name!r} (key {sig.key_id.hex()}) does not verify")
            if (name, sig.key_id) not in seen:
                signatures.append(sig)
        else:
            timestamp = int.from_bytes(sig.data[:8], "big")
            if len(sig.data) != 72 or not _verifies(
                verifier.public_key, sig.data[8:], cosignature_message(text, timestamp)
            ):
                raise NoteError(f"the cosignature of {name!r} (key {sig.key_id.hex()}) does not verify")
            if (name, sig.key_id) not in seen:
                cosignatures.append(Cosignature(name, sig.key_id, timestamp))
        seen.add((name, sig.key_id))
    if not signatures and not cosignatures:
        raise NoteError("no signature on the note is by a known key")
    return OpenedNote(text, tuple(signatures), tuple(cosignatures), tuple(unverified))


def _verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


# --- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A verified signed tree head: the log ``origin`` had ``size`` leaves with ``root``.

    Only :func:`open_checkpoint` makes these from untrusted text; a ``(size, root)`` pair
    for a proof check must come from one of them.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    text: str
    """The signed body, ending in a newline."""
    note: str
    """The whole note as received (to store or forward it unchanged)."""
    signatures: tuple[NoteSignature, ...]
    cosignatures: tuple[Cosignature, ...]

    @property
    def root_hex(self) -> str:
        return self.root.hex()


def checkpoint_text(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """The body of a checkpoint: origin, decimal size, base64 root, extension lines, each ending in ``\\n``.

    Raises:
        NoteError: an invalid origin or extension line, a size outside 0..2**64-1, a root not 32 bytes.
    """
    _check_name(origin, "origin")
    if type(size) is not int or not 0 <= size <= MAX_TREE_SIZE:
        raise NoteError("a tree size is an unsigned 64-bit integer")
    if not isinstance(root, bytes) or len(root) != 32:
        raise NoteError("a root hash is 32 bytes")
    for line in extensions:
        if not line or "\n" in line or _CONTROL.search(line):
            raise NoteError("an extension line is non-empty, without newline or control characters")
    return "".join(f"{line}\n" for line in (origin, str(size), _b64(root), *extensions))


def sign_checkpoint(signer: NoteSigner, size: int, root: bytes, *, extensions: Sequence[str] = ()) -> str:
    """A signed checkpoint note for ``(size, root)``, with the signer's key name as the origin."""
    text = checkpoint_text(signer.name, size, root, extensions)
    return f"{text}\n{signer.signature_line(text)}"


def add_cosignature(note: str, line: str) -> str:
    """The note with one more signature line (e.g. a witness's cosignature) appended."""
    if not note.endswith("\n") or not line.startswith(SIGNATURE_PREFIX) or not line.endswith("\n"):
        raise NoteError("append whole signature lines to a whole note")
    return note + line


def parse_checkpoint_text(text: str, *, allow_extensions: bool = False) -> tuple[str, int, bytes, tuple[str, ...]]:
    """``(origin, size, root, extensions)`` from a checkpoint body, parsed strictly.

    Raises:
        NoteError: fewer than three lines, a size with leading zeros, a sign or beyond 2**64-1, a root
            that is not canonical base64 of 32 bytes, an empty extension line, or any extension line
            when ``allow_extensions`` is false.
    """
    if not text.endswith("\n"):
        raise NoteError("a checkpoint body ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has an origin, a size and a root line")
    origin, size_text, root_text, *extensions = lines
    _check_name(origin, "origin")
    if not _SIZE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise NoteError(f"tree size {size_text!r} is not a canonical decimal below 2**64")
    root = _b64decode(root_text, "the root hash")
    if len(root) != 32:
        raise NoteError("the root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise NoteError("a checkpoint has no empty extension line")
    if extensions and not allow_extensions:
        raise NoteError("the checkpoint has extension lines this verifier does not expect")
    return origin, int(size_text), root, tuple(extensions)


def open_checkpoint(
    note: str | bytes,
    log_key: NoteVerifier,
    *,
    origin: str | None = None,
    witnesses: Sequence[NoteVerifier] = (),
    witness_quorum: int = 0,
    allow_extensions: bool = False,
) -> SignedCheckpoint:
    """Verify a signed checkpoint against the log's key (and witnesses) and parse its body.

    Args:
        note: the signed note as received.
        log_key: the log's trusted Ed25519 key (type 0x01); its signature is required.
        origin: the expected origin line; defaults to the key's name (a log signs as its origin).
        witnesses: trusted witness cosignature keys (type 0x04).
        witness_quorum: how many distinct witnesses must have cosigned.
        allow_extensions: accept extension lines after the root (Genesis writes none).

    Raises:
        NoteError: the note is malformed, not signed by ``log_key``, signed badly by any known key,
            short of the witness quorum, for another origin, or its body is not a strict checkpoint.
    """
    if log_key.algorithm != ED25519:
        raise NoteError("a log key has type 0x01 (Ed25519)")
    if any(w.algorithm != COSIGNATURE_V1 for w in witnesses):
        raise NoteError("a witness key has type 0x04 (cosignature/v1)")
    opened = open_note(note, [log_key, *witnesses])
    if not any(s.key_id == log_key.key_id and s.name == log_key.name for s in opened.signatures):
        raise NoteError(f"the checkpoint is not signed by the log key {log_key.name!r}")
    cosigned = {(c.witness, c.key_id) for c in opened.cosignatures}
    if len(cosigned) < witness_quorum:
        raise NoteError(f"{len(cosigned)} witness cosignatures; {witness_quorum} required")
    parsed_origin, size, root, extensions = parse_checkpoint_text(opened.text, allow_extensions=allow_extensions)
    expected = log_key.name if origin is None else origin
    if parsed_origin != expected:
        raise NoteError(f"the checkpoint is for origin {parsed_origin!r}, not {expected!r}")
    return SignedCheckpoint(
        parsed_origin, size, root, extensions, opened.text, _note_text(note), opened.signatures, opened.cosignatures
    )
