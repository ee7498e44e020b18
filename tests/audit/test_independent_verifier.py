"""An independent verifier written from docs/audit-format.md alone (hashlib, hmac, json, base64, cryptography).

It does not import genesis.audit: it reads the tables with plain SQL and the export files as text, computes the
Merkle tree (sections 8, 10) and checks the signed tree heads as C2SP notes (section 9), and must agree with the
store's own verification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.audit.conftest import drop_append_only_triggers, raw_sql

GENESIS = "0" * 64
CANONICAL_KEYS = [
    "action", "actor", "correlation_id", "event_id", "level", "message", "metadata", "method",
    "occurred_at_us", "outcome", "path", "prev_hash", "request_id", "seq", "source_ip", "status", "user_agent",
]  # fmt: skip
COLUMNS = [
    "seq", "event_id", "occurred_at_us", "level", "action", "outcome", "actor", "source_ip", "user_agent",
    "method", "path", "status", "correlation_id", "request_id", "message", "metadata", "prev_hash", "hash",
]  # fmt: skip
H = lambda data: hashlib.sha256(data).digest()  # noqa: E731


# --- the verifier (docs §2-§10) ---------------------------------------------------------
def canonical(event: dict[str, Any]) -> bytes:
    obj = {key: event[key] for key in CANONICAL_KEYS}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def link_hash(prev_hash: str, event: dict[str, Any], hmac_key: bytes | None) -> str:
    data = bytes.fromhex(prev_hash) + canonical(event)
    if hmac_key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(hmac_key, data, hashlib.sha256).hexdigest()


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_ok(cp: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    if cp["key_id"] != key_id_of(public_key):
        return False
    payload = f"genesis-audit-checkpoint/v1\n{cp['seq']}\n{cp['head_hash']}\n{cp['created_at_us']}\n".encode("ascii")
    try:
        public_key.verify(bytes.fromhex(cp["signature"]), payload)
    except InvalidSignature:
        return False
    return True


def head_of(note: str, vkey: str) -> tuple[int, bytes] | None:
    """(size, root) of a signed note (§9.2-9.3) if the log key's signature verifies, else None."""
    name, key_hex, key_b64 = vkey.split("+", 2)  # the base64 key may hold '+' too
    raw = base64.b64decode(key_b64)
    assert raw[0] == 1
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == key_hex
    split = note.rfind("\n\n")
    text, block = note[: split + 1], note[split + 2 :]
    good = False
    for line in block.splitlines():
        signer, _, sig64 = line.removeprefix("\u2014 ").partition(" ")
        sig = base64.b64decode(sig64)
        if signer == name and sig[:4].hex() == key_hex:
            try:
                public.verify(sig[4:], text.encode())
            except InvalidSignature:
                return None
            good = True
    origin, size, root = text.splitlines()[:3]
    if not good or origin != name:
        return None
    return int(size), base64.b64decode(root)


def push(frontier: list[bytes], n: int, leaf: bytes) -> None:
    """§8.2: append a leaf to the frontier of a tree of n leaves."""
    h = leaf
    while n & 1:
        h = H(b"\x01" + frontier.pop() + h)
        n >>= 1
    frontier.append(h)


def root(frontier: list[bytes]) -> bytes:
    if not frontier:
        return H(b"")
    r = frontier[-1]
    for h in reversed(frontier[:-1]):
        r = H(b"\x01" + h + r)
    return r


def independent_verify(
    events: Iterable[dict[str, Any]],
    *,
    start_seq: int,
    start_prev: str,
    checkpoints: list[dict[str, Any]],
    public_key: Ed25519PublicKey,
    heads: Iterable[str] = (),
    vkey: str = "",
    frontier: list[bytes] | None = None,
    hmac_key: bytes | None = None,
) -> tuple[bool, int | None]:
    """(ok, first bad seq) following the algorithm of docs §7 and §10 (without naming the kind)."""
    for cp in checkpoints:
        if not signature_ok(cp, public_key):
            return False, cp["seq"]
    vouch: dict[int, set[str]] = {}
    for cp in checkpoints:
        if cp["seq"] >= start_seq - 1:
            vouch.setdefault(cp["seq"], set()).add(cp["head_hash"])
    roots: dict[int, set[bytes]] = {}
    for note in heads:
        opened = head_of(note, vkey)
        if opened is None:
            return False, None
        if opened[0] >= start_seq - 1:
            roots.setdefault(opened[0], set()).add(opened[1])
    if vouch.get(start_seq - 1, {start_prev}) != {start_prev}:
        return False, start_seq - 1
    tree = list(frontier or [])
    if roots.get(start_seq - 1, {root(tree)}) != {root(tree)}:
        return False, start_seq - 1
    expected, prev, covered = start_seq, start_prev, start_seq - 1
    for event in events:
        if event["seq"] != expected or event["prev_hash"] != prev or link_hash(prev, event, hmac_key) != event["hash"]:
            return False, expected
        prev = event["hash"]
        push(tree, expected - 1, H(b"\x00" + canonical(event)))
        if expected in vouch and vouch[expected] != {prev}:
            return False, covered + 1
        if expected in roots and roots[expected] != {root(tree)}:
            return False, covered + 1
        if expected in vouch or expected in roots:
            covered = expected
        expected += 1
    if any(seq >= expected for seq in [*vouch, *roots]):
        return False, expected
    return True, None


def events_from_sql(url: str) -> Iterator[dict[str, Any]]:
    for row in raw_sql(url, f"SELECT {', '.join(COLUMNS)} FROM audit_events ORDER BY seq"):
        yield dict(zip(COLUMNS, row, strict=True))


def checkpoints_from_sql(url: str) -> list[dict[str, Any]]:
    names = ["seq", "head_hash", "created_at_us", "key_id", "signature"]
    return [dict(zip(names, r, strict=True)) for r in raw_sql(url, f"SELECT {', '.join(names)} FROM audit_checkpoints")]


def start_from_sql(url: str) -> tuple[int, str]:
    rows = raw_sql(url, "SELECT last_seq, last_hash FROM audit_archives ORDER BY last_seq DESC LIMIT 1")
    return (int(rows[0][0]) + 1, str(rows[0][1])) if rows else (1, GENESIS)  # type: ignore[call-overload]


def heads_from_sql(url: str) -> list[str]:
    return [str(r[0]) for r in raw_sql(url, "SELECT note FROM audit_heads ORDER BY size")]


def verify_export_file(path: Path, vkey: str, public_key: Ed25519PublicKey,
                       digest: str | None = None) -> tuple[bool, int | None]:
    data = path.read_bytes()
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        return False, None
    lines = [json.loads(line) for line in data.decode("utf-8").split("\n") if line]
    header, body = lines[0], lines[1:]
    assert header["format"] == "genesis-audit-export/2"
    cps = [line for line in body if line["type"] == "checkpoint"]
    events = [line for line in body if line["type"] == "event"]
    heads = [line["note"] for line in body if line["type"] == "head"]
    end = [line for line in body if line["type"] == "end"]
    ok, bad = independent_verify(
        events, start_seq=header["start_seq"], start_prev=header["start_prev_hash"], checkpoints=cps,
        public_key=public_key, heads=heads, vkey=vkey,
        frontier=[base64.b64decode(h) for h in header["start_frontier"]],
    )  # fmt: skip
    if ok and (len(end) != 1 or end[0]["count"] != len(events)):
        return False, header["start_seq"] + len(events)
    return ok, bad


# --- the cross-checks -----------------------------------------------------------------------
def _populate(store_url: str, signer_dir: Path) -> Any:
    from genesis.audit.checkpoints import CheckpointSigner, load_or_create_signing_key
    from genesis.audit.heads import HeadMaker, log_signer
    from genesis.audit.writer import AuditWriter
    from genesis.storage.audit_sql import open_audit_store
    from tests.audit.chainlib import make_event

    signer = CheckpointSigner.from_data_dir(signer_dir)
    store = open_audit_store(store_url)
    heads = HeadMaker(store, log_signer(load_or_create_signing_key(signer_dir)), head_log=signer_dir / "heads.log")
    with AuditWriter(store, heads=heads, batch_max=16) as writer:
        tickets = [writer.submit(make_event(i, message=f'tricky "quote" \\ \n\t\x1b[31m é 😀 {i}')) for i in range(60)]
        for ticket in tickets:
            ticket.wait(10)
    return store, signer, heads


def test_the_independent_verifier_agrees_with_the_store(store_url: str, tmp_path: Path) -> None:
    from genesis.audit.trail import TrustedKeys, verify_store

    store, signer, heads = _populate(store_url, tmp_path / "keys")
    vkey, keys = heads.verifier.vkey, TrustedKeys(heads.verifier)
    try:
        public_key = signer.public_key
        start_seq, start_prev = start_from_sql(store_url)
        notes = heads_from_sql(store_url)
        assert notes and head_of(notes[-1], vkey) == (60, store.tree_root()[1])  # the shutdown head
        ok, bad = independent_verify(
            events_from_sql(store_url), start_seq=start_seq, start_prev=start_prev,
            checkpoints=checkpoints_from_sql(store_url), public_key=public_key, heads=notes, vkey=vkey,
        )  # fmt: skip
        assert (ok, bad) == (True, None)
        assert verify_store(store, keys=keys).ok

        drop_append_only_triggers(store_url)
        raw_sql(store_url, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 33")
        ok, bad = independent_verify(
            events_from_sql(store_url), start_seq=1, start_prev=GENESIS, checkpoints=checkpoints_from_sql(store_url),
            public_key=public_key, heads=notes, vkey=vkey,
        )  # fmt: skip
        report = verify_store(store, keys=keys)
        assert (ok, bad) == (False, 33) and (report.ok, report.first_bad_seq) == (False, 33)

        raw_sql(store_url, "DELETE FROM audit_events WHERE seq > 40")
        ok, bad = independent_verify(
            (e for e in events_from_sql(store_url) if e["seq"] < 33), start_seq=1, start_prev=GENESIS,
            checkpoints=checkpoints_from_sql(store_url), public_key=public_key, heads=notes, vkey=vkey,
        )  # fmt: skip
        assert (ok, bad) == (False, 33)  # the shutdown head vouches for seq 60
    finally:
        store.close()


def test_the_independent_verifier_checks_archives_and_exports(sqlite_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from genesis.audit.trail import archive_events, export_events

    store, signer, heads = _populate(sqlite_url, tmp_path / "keys")
    vkey = heads.verifier.vkey
    try:
        rows = raw_sql(sqlite_url, "SELECT occurred_at_us FROM audit_events WHERE seq = 25")
        moment = datetime.fromtimestamp(int(rows[0][0]) / 1e6, tz=UTC)  # type: ignore[call-overload]
        record = archive_events(store, before=moment, export_dir=tmp_path, retention_days=0, heads=heads)
        assert record is not None and record.last_seq == 24
        archived = raw_sql(sqlite_url, "SELECT digest, location, last_seq, last_hash FROM audit_archives")
        digest, location = str(archived[0][0]), Path(str(archived[0][1]))
        assert verify_export_file(location, vkey, signer.public_key, digest) == (True, None)

        start_seq, start_prev = start_from_sql(sqlite_url)
        assert (start_seq, start_prev) == (25, record.last_hash)
        summary = export_events(store, tmp_path / "export.ndjson", heads=heads)  # from the boundary on
        assert verify_export_file(summary.path, vkey, signer.public_key, summary.digest) == (True, None)
        text = summary.path.read_text("utf-8")
        summary.path.write_text(text.replace('"actor":"user3"', '"actor":"user4"', 1), "utf-8")
        assert verify_export_file(summary.path, vkey, signer.public_key)[0] is False
        assert verify_export_file(summary.path, vkey, signer.public_key, summary.digest) == (False, None)
    finally:
        store.close()
