"""The witness against a malicious server: a fake log on 127.0.0.1 serves forks, rollbacks and bad proofs.

immudb shipped a client that accepted a malicious server's proofs (GO-2022-1117); these tests are the server
that lies, and the witness must refuse every lie, keep the head it trusted, and keep the evidence.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from genesis.audit.canonical import canonical_json
from genesis.audit.merkle import MemoryTree, leaf_hash
from genesis.audit.note import NoteSigner, sign_checkpoint
from genesis.audit.witness import RemoteLog, load_state, observe
from genesis.cli.main import app
from tests.audit.chainlib import build_chain, rechain, with_field

LOG = NoteSigner("genesis.test/audit", Ed25519PrivateKey.generate())
ROWS = build_chain(40)
FORKED = rechain([*ROWS[:12], with_field(ROWS[12], 6, "mallory"), *ROWS[13:]], 12)


def tree_of(rows: Any) -> MemoryTree:
    tree = MemoryTree()
    for row in rows:
        tree.append(leaf_hash(canonical_json(row)))
    return tree


TREE, FORK = tree_of(ROWS), tree_of(FORKED)
b64 = lambda h: base64.b64encode(h).decode()  # noqa: E731


class FakeLog:
    """What the fake server answers; each test sets ``checkpoint`` and ``consistency`` as it likes."""

    def __init__(self) -> None:
        self.checkpoint: str | Callable[[], str] = ""
        self.consistency: Callable[[int, int], list[str]] = lambda m, n: [b64(h) for h in TREE.consistency_proof(
            m, n)]
        self.status = 200
        self.export = b""
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []


@contextmanager
def serving(fake: FakeLog) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            fake.requests.append((url.path, query, self.headers.get("Authorization")))
            if fake.status != 200:
                body, kind = b'{"detail":"down"}', "application/problem+json"
                self.send_response(fake.status)
            elif url.path == "/audit/checkpoint":
                note = fake.checkpoint() if callable(fake.checkpoint) else fake.checkpoint
                body, kind = note.encode(), "text/plain; charset=utf-8"
                self.send_response(200)
            elif url.path == "/audit/export":
                body, kind = fake.export, "application/x-ndjson"
                self.send_response(200)
            elif url.path == "/audit/proofs/consistency":
                proof = fake.consistency(int(query["first"][0]), int(query["second"][0]))
                body, kind = json.dumps({"consistency": proof}).encode(), "application/json"
                self.send_response(200)
            else:
                body, kind = b"{}", "application/json"
                self.send_response(404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def head(size: int, tree: MemoryTree = TREE, signer: NoteSigner = LOG) -> str:
    return sign_checkpoint(signer, size, tree.root(size))


@pytest.fixture
def fake() -> FakeLog:
    return FakeLog()


def trust(url: str, state: Path, size: int, fake: FakeLog) -> None:
    fake.checkpoint = head(size)
    assert observe(RemoteLog(url, token="t"), state, vkey=LOG.verifier.vkey).kind == "trusted"


def test_the_first_head_is_trusted_then_each_new_one_only_with_a_proof(fake: FakeLog, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    with serving(fake) as url:
        trust(url, state, 10, fake)
        fake.checkpoint = head(10)
        assert observe(RemoteLog(url, token="t"), state).kind == "unchanged"
        fake.checkpoint = head(25)
        seen = observe(RemoteLog(url, token="t"), state)
        assert (seen.kind, seen.trusted.size if seen.trusted else None) == ("advanced", 25)
    assert load_state(state) == load_state(state) and load_state(state).checkpoint == head(25)  # type: ignore[union-attr]
    assert ("/audit/proofs/consistency", {"first": ["10"], "second": ["25"]}, "Bearer t") in fake.requests


@pytest.mark.parametrize(("lie", "kind"), [
    ("smaller", "rollback"),
    ("same size other root", "split_view"),
    ("a forked history", "split_view"),
    ("proof of the wrong length", "split_view"),
    ("proof for another tree", "split_view"),
    ("proof reordered", "split_view"),
    ("unknown key", "bad_signature"),
    ("another origin", "bad_signature"),
    ("not a note", "bad_signature"),
])  # fmt: skip
def test_every_lie_is_refused_the_trusted_head_kept_and_the_evidence_saved(
    fake: FakeLog, tmp_path: Path, lie: str, kind: str
) -> None:
    state = tmp_path / "witness.json"
    good = TREE.consistency_proof(20, 30)
    lies: dict[str, tuple[str, Callable[[int, int], list[str]]]] = {
        "smaller": (head(15), fake.consistency),
        "same size other root": (head(20, FORK), fake.consistency),
        "a forked history": (head(30, FORK), lambda m, n: [b64(h) for h in FORK.consistency_proof(m, n)]),
        "proof of the wrong length": (head(30), lambda m, n: [b64(h) for h in good[:-1]]),
        "proof for another tree": (head(30), lambda m, n: [b64(h) for h in TREE.consistency_proof(21, 30)]),
        "proof reordered": (head(30), lambda m, n: [b64(h) for h in reversed(good)]),
        "unknown key": (head(30, signer=NoteSigner(LOG.name, Ed25519PrivateKey.generate())), fake.consistency),
        "another origin": (sign_checkpoint(NoteSigner("genesis.test/other", LOG._key), 30, TREE.root(30)),
                           fake.consistency),
        "not a note": ("<html>oops</html>", fake.consistency),
    }
    with serving(fake) as url:
        trust(url, state, 20, fake)
        fake.checkpoint, fake.consistency = lies[lie]
        seen = observe(RemoteLog(url, token="t"), state)
    assert (seen.kind, seen.failed) == (kind, True), seen.detail
    assert load_state(state).checkpoint == head(20)  # type: ignore[union-attr]  # nothing new trusted
    assert seen.evidence is not None and head(20) in seen.evidence.read_text("utf-8")
    assert seen.seen is not None and seen.seen in seen.evidence.read_text("utf-8")


def test_an_unreachable_or_failing_server_concludes_nothing(fake: FakeLog, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    with serving(fake) as url:
        trust(url, state, 20, fake)
        fake.status = 503
        seen = observe(RemoteLog(url, token="t"), state)
        assert (seen.kind, seen.failed) == ("unavailable", False) and "503" in seen.detail
    seen = observe(RemoteLog(url, token="t"), state)  # the server is gone
    assert seen.kind == "unavailable" and load_state(state).checkpoint == head(20)  # type: ignore[union-attr]


def test_a_malformed_proof_is_unavailable_not_a_crash(fake: FakeLog, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    with serving(fake) as url:
        trust(url, state, 20, fake)
        fake.checkpoint = head(30)
        for junk in (["not base64!"], [b64(b"short")], "a string", [b64(bytes(32))] * 500):
            fake.consistency = lambda m, n, junk=junk: junk  # type: ignore[misc]
            assert observe(RemoteLog(url, token="t"), state).kind == "unavailable"


def test_the_state_keeps_its_key_and_refuses_another(fake: FakeLog, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    with serving(fake) as url:
        with pytest.raises(ValueError, match="first round needs the log key"):
            observe(RemoteLog(url, token="t"), state)
        trust(url, state, 5, fake)
        other = NoteSigner(LOG.name, Ed25519PrivateKey.generate()).verifier.vkey
        with pytest.raises(ValueError, match="not the one this state file trusts"):
            observe(RemoteLog(url, token="t"), state, vkey=other)


runner = CliRunner()


def test_genesis_audit_monitor_once_exits_non_zero_and_logs_an_error_on_a_split_view(
    fake: FakeLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENESIS_MONITOR_TOKEN", "secret-token-value")
    state = tmp_path / "witness.json"
    with serving(fake) as url:
        fake.checkpoint = head(20)
        first = runner.invoke(app, ["audit", "monitor", "--url", url, "--state", str(state), "--key",
                                    LOG.verifier.vkey, "--once"])
        assert first.exit_code == 0, first.output
        fake.checkpoint = head(30)
        assert runner.invoke(app, ["audit", "monitor", "--url", url, "--state", str(state), "--once"]).exit_code == 0
        fake.checkpoint = head(30, FORK)
        forked = runner.invoke(app, ["audit", "monitor", "--url", url, "--state", str(state), "--once"])
        assert forked.exit_code == 1
        fake.status = 503
        down = runner.invoke(app, ["audit", "monitor", "--url", url, "--state", str(state), "--once"])
        assert down.exit_code == 5
    logged = capfd.readouterr().err + forked.output
    assert "ERROR AUDIT LOG MISBEHAVED (split_view)" in logged and "secret-token-value" not in logged
    assert any(r[2] == "Bearer secret-token-value" for r in fake.requests)


def test_the_monitor_loop_stops_at_the_first_lie(fake: FakeLog, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    served = iter([head(10), head(10), head(20), head(5)])
    fake.checkpoint = lambda: next(served)
    with serving(fake) as url:
        result = runner.invoke(app, ["audit", "monitor", "--url", url, "--state", str(state), "--key",
                                     LOG.verifier.vkey, "--interval", "1"], env={"GENESIS_MONITOR_TOKEN": "t"})
    assert result.exit_code == 1  # the fourth round saw a rollback from 20 to 5
    assert load_state(state).checkpoint == head(20)  # type: ignore[union-attr]


def _export(rows: Any, tree: MemoryTree, signer: NoteSigner = LOG) -> bytes:
    from genesis.audit.events import GENESIS_HASH
    from genesis.audit.export import ExportStart, export_lines
    from genesis.audit.merkle import Frontier

    note = sign_checkpoint(signer, len(rows), tree.root(len(rows)))
    return b"".join(export_lines(rows, start=ExportStart(1, GENESIS_HASH, Frontier()), hash_algorithm="sha256",
                                 heads=[note]))


@pytest.mark.parametrize(("served", "kind"), [
    ("honest", None),
    ("a forked history signed by the log", "forged"),  # (a key holder re-signed it; the head log still has 40)
    ("re-signed with a fresh key", "bad_checkpoint"),
    ("cut, its head and trailer kept", "truncated"),
])  # fmt: skip
def test_verify_url_downloads_the_export_and_refuses_what_a_malicious_server_serves(
    fake: FakeLog, tmp_path: Path, served: str, kind: str | None
) -> None:
    from genesis.audit.headlog import append_note

    log = tmp_path / "heads.log"
    append_note(log, head(40))  # a head published earlier, kept outside the server
    exports = {
        "honest": _export(ROWS, TREE),
        "a forked history signed by the log": _export(FORKED, FORK),
        "re-signed with a fresh key": _export(ROWS, TREE, NoteSigner(LOG.name, Ed25519PrivateKey.generate())),
        "cut, its head and trailer kept": b"".join(
            [*(lines := _export(ROWS, TREE).splitlines(keepends=True))[:31], *lines[-2:]]),
    }
    fake.export = exports[served]
    with serving(fake) as url:
        result = runner.invoke(app, ["audit", "verify", "--url", url, "--key", LOG.verifier.vkey, "--against",
                                     str(log), "--json"], env={"GENESIS_MONITOR_TOKEN": "t",
                                                               "GENESIS_DATA_DIR": str(tmp_path / "data")})
    report = json.loads(result.output.strip().splitlines()[-1])
    assert (result.exit_code, report["kind"]) == ((0, None) if kind is None else (1, kind)), result.output
    if kind == "forged":  # no head before 40 matched: the rewrite is somewhere in 1..40
        assert (report["first_bad_seq"], report["covered_size"]) == (1, 0)
