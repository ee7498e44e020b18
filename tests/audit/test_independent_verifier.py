"""An independent verifier written from docs/audit-format.md alone (hashlib, hmac, json, cryptography).

It does not import genesis.audit: it reads the tables with plain SQL and the export
files as text, and must agree with the store's own verification.
"""

from __future__ import annotations

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


# --- the verifier (docs §2-§7) ---------------------------------------------------------
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


def independent_verify(
    events: Iterable[dict[str, Any]],
    *,
    start_seq: int,
    start_prev: str,
    checkpoints: list[dict[str, Any]],
    public_key: Ed25519PublicKey,
    hmac_key: bytes | None = None,
) -> tuple[bool, int | None]:
    """(ok, first bad seq) following the algorithm of docs §7 (without naming the kind)."""
    for cp in checkpoints:
        if not signature_ok(cp, public_key):
            return False, cp["seq"]
    vouch: dict[int, set[str]] = {}
    for cp in checkpoints:
        if cp["seq"] >= start_seq - 1:
            vouch.setdefault(cp["seq"], set()).add(cp["head_hash"])
    if vouch.get(start_seq - 1, {start_prev}) != {start_prev}:
        return False, start_seq - 1
    expected, prev, covered = start_seq, start_prev, start_seq - 1
    for event in events:
        if event["seq"] != expected or event["prev_hash"] != prev or link_hash(prev, event, hmac_key) != event["hash"]:
            return False, expected
        prev = event["hash"]
        if expected in vouch:
            if vouch[expected] != {prev}:
                return False, covered + 1
            covered = expected
        expected += 1
    if any(seq >= expected for seq in vouch):
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


def verify_export_file(path: Path, public_key: Ed25519PublicKey, digest: str | None = None) -> tuple[bool, int | None]:
    data = path.read_bytes()
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        return False, None
    lines = [json.loads(line) for line in data.decode("utf-8").split("\n") if line]
    header, body = lines[0], lines[1:]
    assert header["format"] == "genesis-audit-export/1"
    cps = [line for line in body if line["type"] == "checkpoint"]
    events = [line for line in body if line["type"] == "event"]
    end = [line for line in body if line["type"] == "end"]
    ok, bad = independent_verify(
        events, start_seq=header["start_seq"], start_prev=header["start_prev_hash"], checkpoints=cps,
        public_key=public_key,
    )  # fmt: skip
    if ok and (len(end) != 1 or end[0]["count"] != len(events)):
        return False, header["start_seq"] + len(events)
    return ok, bad


# --- the cross-checks -----------------------------------------------------------------------
def _populate(store_url: str, signer_dir: Path) -> Any:
    from genesis.audit.checkpoints import CheckpointSigner
    from genesis.audit.writer import AuditWriter
    from genesis.storage.audit_sql import open_audit_store
    from tests.audit.chainlib import make_event

    signer = CheckpointSigner.from_data_dir(signer_dir)
    store = open_audit_store(store_url)
    with AuditWriter(store, signer=signer, batch_max=16) as writer:
        tickets = [writer.submit(make_event(i, message=f'tricky "quote" \\ \n\t\x1b[31m é 😀 {i}')) for i in range(60)]
        for ticket in tickets:
            ticket.wait(10)
    return store, signer


def test_the_independent_verifier_agrees_with_the_store(store_url: str, tmp_path: Path) -> None:
    from genesis.audit.trail import verify_store

    store, signer = _populate(store_url, tmp_path / "keys")
    try:
        public_key = signer.public_key
        start_seq, start_prev = start_from_sql(store_url)
        ok, bad = independent_verify(
            events_from_sql(store_url), start_seq=start_seq, start_prev=start_prev,
            checkpoints=checkpoints_from_sql(store_url), public_key=public_key,
        )  # fmt: skip
        assert (ok, bad) == (True, None)
        assert verify_store(store, public_key=public_key).ok

        drop_append_only_triggers(store_url)
        raw_sql(store_url, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 33")
        ok, bad = independent_verify(
            events_from_sql(store_url), start_seq=1, start_prev=GENESIS,
            checkpoints=checkpoints_from_sql(store_url), public_key=public_key,
        )  # fmt: skip
        report = verify_store(store, public_key=public_key)
        assert (ok, bad) == (False, 33) and (report.ok, report.first_bad_seq) == (False, 33)

        raw_sql(store_url, "DELETE FROM audit_events WHERE seq > 40")
        ok, bad = independent_verify(
            (e for e in events_from_sql(store_url) if e["seq"] < 33), start_seq=1, start_prev=GENESIS,
            checkpoints=checkpoints_from_sql(store_url), public_key=public_key,
        )  # fmt: skip
        assert (ok, bad) == (False, 33)  # the shutdown checkpoint vouches for seq 60
    finally:
        store.close()


def test_the_independent_verifier_checks_archives_and_exports(sqlite_url: str, tmp_path: Path) -> None:
    from genesis.audit.trail import export_events

    store, signer = _populate(sqlite_url, tmp_path / "keys")
    try:
        rows = raw_sql(sqlite_url, "SELECT occurred_at_us FROM audit_events WHERE seq = 25")
        record = store.archive(int(rows[0][0]), tmp_path / "archive.ndjson", signer=signer)  # type: ignore[call-overload]
        assert record is not None and record.last_seq == 24
        archived = raw_sql(sqlite_url, "SELECT digest, location, last_seq, last_hash FROM audit_archives")
        digest, location = str(archived[0][0]), Path(str(archived[0][1]))
        assert verify_export_file(location, signer.public_key, digest) == (True, None)

        start_seq, start_prev = start_from_sql(sqlite_url)
        assert (start_seq, start_prev) == (25, record.last_hash)
        ok, _ = independent_verify(
            events_from_sql(sqlite_url), start_seq=start_seq, start_prev=start_prev,
            checkpoints=checkpoints_from_sql(sqlite_url), public_key=signer.public_key,
        )  # fmt: skip
        assert ok

        summary = export_events(store, tmp_path / "export.ndjson", signer=signer)
        assert verify_export_file(summary.path, signer.public_key, summary.digest) == (True, None)
        text = summary.path.read_text("utf-8")
        summary.path.write_text(text.replace('"actor":"user3"', '"actor":"user4"', 1), "utf-8")
        assert verify_export_file(summary.path, signer.public_key)[0] is False
        assert verify_export_file(summary.path, signer.public_key, summary.digest) == (False, None)
    finally:
        store.close()
