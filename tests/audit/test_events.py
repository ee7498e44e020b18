"""Events: identifiers, cleaning, and the canonical encoding that the chain hashes."""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid

import orjson

from genesis.audit.chain import ChainHasher, prepare, seal
from genesis.audit.events import GENESIS_HASH, AuditEvent, canonical_bytes, new_event, uuid7

ROW = (
    1, "0190a6e2-8b6e-7a3c-9d2e-1f2a3b4c5d6e", 1700000000000000, "AUDIT", "auth.login", "success", "alice",
    "127.0.0.1", None, "POST", "/auth/token", 200, "c-1", None, 'login "ok"\n', '{"client":"web"}', GENESIS_HASH,
)  # fmt: skip
EXPECTED = (
    b'{"action":"auth.login","actor":"alice","correlation_id":"c-1",'
    b'"event_id":"0190a6e2-8b6e-7a3c-9d2e-1f2a3b4c5d6e","level":"AUDIT","message":"login \\"ok\\"\\n",'
    b'"metadata":"{\\"client\\":\\"web\\"}","method":"POST","occurred_at_us":1700000000000000,"outcome":"success",'
    b'"path":"/auth/token","prev_hash":"' + GENESIS_HASH.encode() + b'","request_id":null,"seq":1,'
    b'"source_ip":"127.0.0.1","status":200,"user_agent":null}'
)
SHA256_LINK = "da5053b3eb8c37cb479f75100d754a50f55b9fb219c10768abd1925855fc2e1c"
HMAC_LINK = "2131e65d42ced4a4cc2b5d87c2efe24a37cfc599dcc422cb7455fd5cf0231297"  # key "k" * 32


def test_canonical_encoding_is_byte_for_byte_stable() -> None:
    assert canonical_bytes(ROW) == EXPECTED
    assert hashlib.sha256(bytes(32) + EXPECTED).hexdigest() == SHA256_LINK


def test_link_hash_is_sha256_or_hmac_over_prev_bytes_and_canonical() -> None:
    event = AuditEvent.from_row((*ROW, ""), metadata={"client": "web"})
    assert seal([event], 0, GENESIS_HASH, ChainHasher())[0][17] == SHA256_LINK
    assert seal([event], 0, GENESIS_HASH, ChainHasher("k" * 32))[0][17] == HMAC_LINK
    assert ChainHasher(b"x" * 100).digest(b"a", b"b") == ChainHasher(hashlib.sha256(b"x" * 100).digest()).digest(
        b"a", b"b"
    )


def test_prepared_bytes_equal_the_canonical_encoding_with_seq_and_prev_filled_in() -> None:
    event = new_event("a.b", actor="bob", message="x", metadata={"n": 1.5, "z": [1, "two"]}, correlation_id="c")
    prev = "ab" * 32
    row = seal([prepare(event)], 41, prev, ChainHasher())[0]
    assert row[0] == 42 and row[16] == prev
    assert hashlib.sha256(bytes.fromhex(prev) + canonical_bytes(row)).hexdigest() == row[17]


def test_canonical_strings_match_python_json_for_every_control_and_special_character() -> None:
    rng = random.Random(7)
    specials = [chr(c) for c in range(0x00, 0x21)] + ['"', "\\", "/", "\x7f", "\u2028", "\u2029", "é", "€", "😀"]
    for _ in range(300):
        text = "".join(rng.choice(specials) for _ in range(rng.randint(0, 12)))
        row = tuple(text if isinstance(v, str) else v for v in ROW)
        as_json = json.dumps(
            dict(zip(_KEYS, row, strict=True)), ensure_ascii=False, separators=(",", ":"), sort_keys=True
        )
        assert canonical_bytes(row) == as_json.encode("utf-8")


_KEYS = (
    "seq", "event_id", "occurred_at_us", "level", "action", "outcome", "actor", "source_ip", "user_agent",
    "method", "path", "status", "correlation_id", "request_id", "message", "metadata", "prev_hash",
)  # fmt: skip


def test_uuid7_is_version_7_variant_rfc_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(2000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert abs((parsed[-1].int >> 80) - time.time_ns() // 1_000_000) < 5_000


def test_new_event_cleans_fields_to_what_the_database_keeps() -> None:
    event = new_event(
        "x" * 500,
        actor="a\x00b",
        message="lone \ud800 surrogate",
        user_agent="u" * 600,
        metadata={"big": 2**70, "nan": float("nan"), 3: "int key", "tuple": (1, 2), "nested": {"s": "\x00"}},  # type: ignore[dict-item]
        status=201,
    )
    assert len(event.action) == 128 and len(event.user_agent or "") == 512
    assert event.actor == "a\ufffdb"
    assert event.message == "lone ? surrogate"
    assert event.metadata == {
        "big": str(2**70), "nan": "nan", "3": "int key", "tuple": [1, 2], "nested": {"s": "\ufffd"},
    }  # fmt: skip
    assert event.correlation_id  # a fresh one when none is bound or given
    orjson.dumps(dict(event.metadata))


def test_new_event_redacts_metadata_and_message() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
    event = new_event(
        "auth.token.issue",
        message=f"issued {jwt} for alice",
        metadata={"client_secret": "s3cret!", "items": [{"Authorization": "Bearer abc.def"}], "ok": 1},
    )
    assert jwt not in event.message and "[REDACTED]" in event.message
    assert event.metadata == {"client_secret": "[REDACTED]", "items": [{"Authorization": "[REDACTED]"}], "ok": 1}


def test_prepare_tolerates_raw_events_with_wrong_types() -> None:
    raw = AuditEvent(action="a", actor=42, status="200", metadata={"k": "\ud800"})  # type: ignore[arg-type]
    row = seal([raw], 0, GENESIS_HASH, ChainHasher())[0]
    assert row[6] == "42" and row[11] == 200 and "\\ud800" not in row[15]
