"""Signed checkpoints: the reference's example byte for byte, Go's signed-note example, and strict parsing."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.audit.note import (
    COSIGNATURE_V1,
    ED25519,
    MAX_SIGNATURES,
    CosignatureSigner,
    NoteError,
    NoteSigner,
    NoteVerifier,
    add_cosignature,
    checkpoint_text,
    default_origin,
    open_checkpoint,
    open_note,
    parse_checkpoint_text,
    parse_vkey,
    sign_checkpoint,
)

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=200)

ORIGIN = "genesis.example/audit"
LOG_VKEY = "genesis.example/audit+cbf9631e+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVK"
ROOT_8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
EXAMPLE_NOTE = (
    "genesis.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
    "\u2014 genesis.example/audit "
    "y/ljHozutEY1CaQeKborUU96MMMY9PSsdcjxiPtMiSZJcVGXopvtmpQ2GqPKEO5ji/yqrWS0RHw8bOz36BiaTJN0jwU=\n"
    "\u2014 witness.example/w1 "
    "sltbnQAAAABpVbkAe8a/R/FOLOj7dA4TZf9GLIaxwpBn18rFf7PNrR4mbGdj3fOGZLCmOXQlgraBC+8aClqhOq9j36SId0aliA5BDQ==\n"
)
WITNESS_TIME = 1767225600

# golang.org/x/mod/sumdb/note's documented example (signed-note v1.0.0).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_SIG2 = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)


def seeded(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())


LOG = NoteSigner(ORIGIN, seeded(b"example log key - do not use"))
WITNESS = CosignatureSigner("witness.example/w1", seeded(b"example witness key - do not use"))


def note_for(size: int = 8, root: bytes = ROOT_8, signer: NoteSigner = LOG) -> str:
    return sign_checkpoint(signer, size, root)


# --- the reference's example, byte for byte ----------------------------------------------------------


def test_the_example_log_key_has_the_published_vkey() -> None:
    assert LOG.verifier.vkey == LOG_VKEY
    assert parse_vkey(LOG_VKEY) == LOG.verifier
    assert LOG.verifier.key_id.hex() == "cbf9631e"


def test_the_example_checkpoint_and_cosignature_are_reproduced_byte_for_byte() -> None:
    text = checkpoint_text(ORIGIN, 8, ROOT_8)
    note = add_cosignature(sign_checkpoint(LOG, 8, ROOT_8), WITNESS.signature_line(text, WITNESS_TIME))
    assert note == EXAMPLE_NOTE


def test_the_example_checkpoint_opens_with_its_witness() -> None:
    head = open_checkpoint(EXAMPLE_NOTE, parse_vkey(LOG_VKEY), witnesses=[WITNESS.verifier], witness_quorum=1)
    assert (head.origin, head.size, head.root, head.extensions) == (ORIGIN, 8, ROOT_8, ())
    assert head.text == EXAMPLE_NOTE.split("\n\n")[0] + "\n"
    assert head.note == EXAMPLE_NOTE
    assert [(c.witness, c.key_id.hex(), c.timestamp) for c in head.cosignatures] == [
        ("witness.example/w1", "b25b5b9d", WITNESS_TIME)
    ]
    assert [s.name for s in head.signatures] == [ORIGIN]
    # without the witness key its cosignature is simply unknown, and ignored
    assert open_checkpoint(EXAMPLE_NOTE, LOG.verifier).cosignatures == ()


def test_the_go_signed_note_example_verifies_and_an_unknown_cosigner_is_ignored() -> None:
    opened = open_note(GO_TEXT + "\n" + GO_SIG, [parse_vkey(GO_VKEY)])
    assert opened.text == GO_TEXT and [s.name for s in opened.signatures] == ["PeterNeumann"]
    assert opened.signatures[0].key_id.hex() == "c74f20a3"
    doubly = open_note(GO_TEXT + "\n" + GO_SIG + GO_SIG2, [parse_vkey(GO_VKEY)])
    assert [s.name for s in doubly.unverified] == ["EnochRoot"]
    with pytest.raises(NoteError, match="no signature on the note is by a known key"):
        open_note(GO_TEXT + "\n" + GO_SIG2, [parse_vkey(GO_VKEY)])


# --- keys -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vkey",
    [
        "genesis.example/audit+cbf9631f+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVK",  # key id of another key
        "genesis.example/audit+CBF9631E+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVK",  # upper-case hex
        "genesis.example/audit+cbf9631+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVK",  # 7 hex digits
        "genesis.example/audit+cbf9631e+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVL",  # non-canonical base64
        "genesis.example/audit+cbf9631e+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vV",  # truncated
        "genesis.example/audit+cbf9631e+AjBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVK",  # key type 0x02
        "genesis.example/other+cbf9631e+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVK",  # another name
        "genesis example+cbf9631e+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVK",  # a space in the name
        "+cbf9631e+ATBwpI0klHFnGEsgVBYxkA9HmYJwuN3zKCqXthsQ4vVK",  # no name
        "genesis.example/audit",
        "",
    ],
)
def test_malformed_or_inconsistent_vkeys_are_refused(vkey: str) -> None:
    with pytest.raises(NoteError):
        parse_vkey(vkey)


def test_witness_vkeys_carry_type_4_and_their_own_key_id() -> None:
    verifier = parse_vkey(WITNESS.verifier.vkey)
    assert verifier.algorithm == COSIGNATURE_V1 and verifier.key_id.hex() == "b25b5b9d"
    as_log_key = NoteVerifier.from_public_key("witness.example/w1", verifier.public_key, ED25519)
    assert as_log_key.key_id != verifier.key_id  # the type byte is part of the key id


def test_signer_names_must_be_valid_note_names() -> None:
    for name in ("", "has space", "plus+sign", "tab\there", "nbsp\u00a0here"):
        with pytest.raises(NoteError):
            NoteSigner(name, seeded(b"x"))


def test_the_default_origin_is_derived_from_the_public_key() -> None:
    origin = default_origin(LOG.verifier.public_key)
    assert origin.startswith("genesis-audit/") and len(origin) == len("genesis-audit/") + 16
    assert origin != default_origin(WITNESS.verifier.public_key)
    NoteSigner(origin, seeded(b"example log key - do not use"))  # a valid key name


# --- what must be refused ------------------------------------------------------------------------------


def _resign_body(body: str) -> str:
    """A note over an arbitrary body, correctly signed by the log key (so only the body is at fault)."""
    return f"{body}\n{LOG.signature_line(body)}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("genesis.example/audit\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "canonical decimal"),
        ("genesis.example/audit\n+8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "canonical decimal"),
        ("genesis.example/audit\n-0\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "canonical decimal"),
        ("genesis.example/audit\n 8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "canonical decimal"),
        ("genesis.example/audit\n18446744073709551616\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "2\\*\\*64"),
        ("genesis.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n", "canonical base64"),
        ("genesis.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n", "base64"),
        ("genesis.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQw==\n", "not 32 bytes"),
        ("genesis.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz-Nw7_RgQyg=\n", "base64"),
        ("genesis.example/audit\n8\n", "origin, a size and a root"),
        ("genesis.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\nextra\n", "extension lines"),
        ("genesis.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\nextra\n", "no empty extension"),
        ("other.example/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "not 'genesis.example/audit'"),
    ],
)
def test_a_correctly_signed_but_malformed_checkpoint_body_is_refused(body: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_checkpoint(_resign_body(body), LOG.verifier)


def test_extension_lines_are_accepted_only_when_asked_for() -> None:
    note = sign_checkpoint(LOG, 8, ROOT_8, extensions=["genesis/v1 tiles"])
    with pytest.raises(NoteError, match="extension lines"):
        open_checkpoint(note, LOG.verifier)
    assert open_checkpoint(note, LOG.verifier, allow_extensions=True).extensions == ("genesis/v1 tiles",)


def test_a_known_key_with_a_bad_signature_rejects_the_note_even_beside_a_good_one() -> None:
    note = note_for()
    raw = bytearray(base64.b64decode(note.rsplit(" ", 1)[1]))
    raw[10] ^= 1
    bad_line = f"\u2014 {ORIGIN} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(note.replace(note.split("\n\n")[1], bad_line), LOG.verifier)
    other = NoteSigner(ORIGIN, seeded(b"another key with the same name"))
    both = note + other.signature_line(note.split("\n\n")[0] + "\n")
    assert open_checkpoint(both, LOG.verifier).size == 8  # the other key is unknown: ignored
    with pytest.raises(NoteError, match="does not verify"):  # a bad line by the known key is not
        open_checkpoint(both + bad_line, LOG.verifier)


def test_a_checkpoint_signed_only_by_unknown_keys_is_refused() -> None:
    impostor = NoteSigner(ORIGIN, seeded(b"impostor"))
    with pytest.raises(NoteError, match="known key"):
        open_checkpoint(note_for(signer=impostor), LOG.verifier)
    # a witness's cosignature alone does not make a checkpoint the log's
    text = checkpoint_text(ORIGIN, 8, ROOT_8)
    cosigned_only = f"{text}\n{WITNESS.signature_line(text, WITNESS_TIME)}"
    with pytest.raises(NoteError, match="not signed by the log key"):
        open_checkpoint(cosigned_only, LOG.verifier, witnesses=[WITNESS.verifier])


def test_a_changed_size_or_root_breaks_the_signature() -> None:
    note = note_for(8)
    for forged in (note.replace("\n8\n", "\n9\n", 1), note.replace("Xcnae", "Ycnae", 1)):
        with pytest.raises(NoteError, match="does not verify"):
            open_checkpoint(forged, LOG.verifier)


@pytest.mark.parametrize(
    "note",
    [
        EXAMPLE_NOTE.replace("\n\n", "\n"),  # no empty line before the signatures
        EXAMPLE_NOTE[:-1],  # no final newline
        EXAMPLE_NOTE.replace("\u2014 ", "- ", 1),  # a hyphen for the em dash
        EXAMPLE_NOTE.replace("\u2014 ", "\u2014", 1),  # no space after the dash
        EXAMPLE_NOTE.replace("genesis.example/audit y/", "genesis.example/audit  y/", 1),  # empty base64
        EXAMPLE_NOTE.replace("\n8\n", "\n8\t\n", 1),  # a control character
        EXAMPLE_NOTE.replace("\n8\n", "\n8\r\n", 1),
        EXAMPLE_NOTE.replace("\n8\n", "\n8\x00\n", 1),
        EXAMPLE_NOTE + "\u2014 x AAAA\n",  # a signature shorter than 5 bytes
        EXAMPLE_NOTE + "\n",  # an empty signature line
        "",
        "\n\n",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(NoteError):
        open_checkpoint(note, LOG.verifier, witnesses=[WITNESS.verifier])


@pytest.mark.parametrize("char", ["\t", "\r", "\x00", "\x1b", "\x0b"])
def test_a_correctly_signed_note_with_a_control_character_is_refused(char: str) -> None:
    text = f"genesis.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\nnote{char}\n"
    with pytest.raises(NoteError, match="control character"):
        open_note(f"{text}\n{LOG.signature_line(text)}", [LOG.verifier])


def test_at_most_the_documented_number_of_signature_lines_is_read() -> None:
    note = note_for()
    junk = [NoteSigner(f"junk{i}", seeded(b"junk")).signature_line("x\n") for i in range(MAX_SIGNATURES)]
    assert open_checkpoint(note + "".join(junk[: MAX_SIGNATURES - 1]), LOG.verifier).size == 8
    with pytest.raises(NoteError, match=f"at most {MAX_SIGNATURES} signature lines"):
        open_checkpoint(note + "".join(junk), LOG.verifier)


def test_non_utf8_bytes_are_refused_and_utf8_bytes_accepted() -> None:
    assert open_checkpoint(EXAMPLE_NOTE.encode(), LOG.verifier).size == 8
    with pytest.raises(NoteError, match="UTF-8"):
        open_checkpoint(EXAMPLE_NOTE.encode()[:-3] + b"\xff\n", LOG.verifier)
    with pytest.raises(NoteError, match="UTF-8"):
        open_checkpoint(EXAMPLE_NOTE + "\ud800", LOG.verifier)


def test_witness_quorum_and_cosignature_checks() -> None:
    second = CosignatureSigner("witness.example/w2", seeded(b"second witness"))
    witnesses = [WITNESS.verifier, second.verifier]
    with pytest.raises(NoteError, match="1 witness cosignatures; 2 required"):
        open_checkpoint(EXAMPLE_NOTE, LOG.verifier, witnesses=witnesses, witness_quorum=2)
    text = checkpoint_text(ORIGIN, 8, ROOT_8)
    both = add_cosignature(EXAMPLE_NOTE, second.signature_line(text, WITNESS_TIME + 5))
    assert len(open_checkpoint(both, LOG.verifier, witnesses=witnesses, witness_quorum=2).cosignatures) == 2
    # a repeated cosignature counts once
    again = add_cosignature(EXAMPLE_NOTE, WITNESS.signature_line(text, WITNESS_TIME))
    with pytest.raises(NoteError, match="2 required"):
        open_checkpoint(again, LOG.verifier, witnesses=witnesses, witness_quorum=2)
    # a cosignature whose time was changed no longer verifies
    line = EXAMPLE_NOTE.splitlines()[-1]
    raw = bytearray(base64.b64decode(line.rsplit(" ", 1)[1]))
    raw[11] ^= 1
    moved = EXAMPLE_NOTE.replace(line, f"\u2014 witness.example/w1 {base64.b64encode(bytes(raw)).decode()}")
    with pytest.raises(NoteError, match=r"cosignature of 'witness\.example/w1'"):
        open_checkpoint(moved, LOG.verifier, witnesses=[WITNESS.verifier])
    # key types are not interchangeable
    with pytest.raises(NoteError, match="type 0x01"):
        open_checkpoint(EXAMPLE_NOTE, WITNESS.verifier)
    with pytest.raises(NoteError, match="type 0x04"):
        open_checkpoint(EXAMPLE_NOTE, LOG.verifier, witnesses=[LOG.verifier])


def test_checkpoint_text_refuses_what_it_could_not_parse_back() -> None:
    for args in ((ORIGIN, -1, ROOT_8), (ORIGIN, 1 << 64, ROOT_8), (ORIGIN, 8, ROOT_8[:31]), ("a b", 8, ROOT_8)):
        with pytest.raises(NoteError):
            checkpoint_text(*args)  # type: ignore[arg-type]
    with pytest.raises(NoteError):
        checkpoint_text(ORIGIN, 8, ROOT_8, ["two\nlines"])
    text = checkpoint_text(ORIGIN, (1 << 64) - 1, ROOT_8, ["ext"])
    assert parse_checkpoint_text(text, allow_extensions=True) == (ORIGIN, (1 << 64) - 1, ROOT_8, ("ext",))


@DETERMINISTIC
@given(st.integers(0, len(EXAMPLE_NOTE) - 1), st.characters(codec="utf-8"), st.sampled_from(["replace", "insert"]))
def test_any_one_character_edit_of_a_note_is_refused_or_changes_nothing(pos: int, char: str, how: str) -> None:
    """No edit yields another (size, root) under the log key, and nothing but NoteError escapes."""
    edited = EXAMPLE_NOTE[:pos] + char + EXAMPLE_NOTE[pos + (how == "replace") :]
    try:
        head = open_checkpoint(edited, LOG.verifier, witnesses=[WITNESS.verifier])
    except NoteError:
        return
    assert (head.origin, head.size, head.root) == (ORIGIN, 8, ROOT_8)
