"""genesis audit: query, tail, verify (and tamper detection), export, archive, public-key."""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genesis.cli.main import app
from genesis.config import get_settings

runner = CliRunner()


@pytest.fixture
def populated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENESIS_LOG_CONSOLE", "false")
    monkeypatch.delenv("GENESIS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    for name in ("ann", "bob", "cyd"):
        result = runner.invoke(app, ["users", "create", name, "--role", "viewer", "--password-stdin"],
                               input=f"{name}-password\n")
        assert result.exit_code == 0, result.output
    yield tmp_path
    get_settings.cache_clear()


def _json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_query_and_tail_print_admin_actions(populated: Path) -> None:
    result = runner.invoke(app, ["audit", "query", "--action", "admin.user.create", "--json"])
    assert result.exit_code == 0, result.output
    events = _json_lines(result.output)
    assert [e["metadata"]["target"] for e in events] == ["ann", "bob", "cyd"]  # type: ignore[index]
    user, host = getpass.getuser(), socket.gethostname()
    assert all(e["actor"] == f"cli:{user}@{host}" for e in events)  # the operator, not just "the CLI"
    assert all(e["metadata"]["operator"] == user and e["metadata"]["host"] == host for e in events)  # type: ignore[index]
    assert "ann-password" not in result.output
    newest = _json_lines(runner.invoke(app, ["audit", "tail", "-n", "2", "--json"]).output)
    assert len(newest) == 2 and newest[0]["seq"] < newest[1]["seq"]  # type: ignore[operator]
    by_day = _json_lines(runner.invoke(app, ["audit", "query", "--start", "2001-01-01", "--end", "2001-01-01",
                                             "--json"]).output)
    assert by_day == []
    bad = runner.invoke(app, ["audit", "query", "--start", "yesterday"])
    assert bad.exit_code == 2


def test_verify_ok_then_tamper_detected_with_the_seq(populated: Path) -> None:
    ok = runner.invoke(app, ["audit", "verify", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True
    events = _json_lines(runner.invoke(app, ["audit", "query", "--action", "admin.user.create", "--json"]).output)
    target_seq = events[1]["seq"]
    # An attacker with file access drops the append-only trigger and edits a row.
    conn = sqlite3.connect(populated / "genesis.db")
    conn.execute("DROP TRIGGER audit_events_no_update")
    conn.execute("UPDATE audit_events SET actor = 'someone-else' WHERE seq = ?", (target_seq,))
    conn.commit()
    conn.close()
    broken = runner.invoke(app, ["audit", "verify", "--json"])
    assert broken.exit_code == 1
    report = json.loads(broken.output)
    assert report["ok"] is False and report["first_bad_seq"] == target_seq and report["kind"] == "modified"
    ranged = runner.invoke(app, ["audit", "verify", "--from", "1", "--to", str(target_seq - 1), "--json"])
    assert ranged.exit_code == 0


def test_append_only_at_the_storage_layer(populated: Path) -> None:
    conn = sqlite3.connect(populated / "genesis.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_events SET actor = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_events WHERE seq = 1")
    conn.close()


def test_export_is_verifiable_and_archive_respects_retention(populated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = populated / "export.ndjson"
    result = runner.invoke(app, ["audit", "export", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["count"] >= 3 and len(summary["sha256"]) == 64 and out.exists()
    refused = runner.invoke(app, ["audit", "archive", "--before", "2999-01-01"])
    assert refused.exit_code == 2 and "retention" in refused.output
    monkeypatch.setenv("GENESIS_AUDIT_RETENTION_DAYS", "0")
    get_settings.cache_clear()
    cutoff = datetime.now(UTC).isoformat()
    archived = runner.invoke(app, ["audit", "archive", "--before", cutoff, "--json"])
    assert archived.exit_code == 0, archived.output
    record = json.loads(archived.output)
    assert record["archived"] >= 3 and Path(record["location"]).exists()
    after = runner.invoke(app, ["audit", "verify", "--json"])
    assert after.exit_code == 0, after.output
    assert _json_lines(runner.invoke(app, ["audit", "query", "--action", "audit.archive", "--json"]).output)


def test_public_key_is_pem(populated: Path) -> None:
    result = runner.invoke(app, ["audit", "public-key"])
    assert result.exit_code == 0
    assert result.output.startswith("-----BEGIN PUBLIC KEY-----")


# --- the tree: heads, the head log, offline files ----------------------------------------------------


def _tamper(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    for trigger in ("audit_events_no_update", "audit_events_delete_archived_only", "audit_heads_no_delete",
                    "audit_tree_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _verify(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["audit", "verify", "--json", *args])
    lines = _json_lines(result.output)
    return result.exit_code, (lines[-1] if lines else {"output": result.output})


def test_a_cut_tail_is_found_although_its_heads_remain(populated: Path) -> None:
    """The issue's first finding: on main, deleting the newest events while their checkpoints stayed verified ok."""
    code, report = _verify()
    assert code == 0 and report["covered_seq"] == report["last_seq"]
    last = int(report["last_seq"])  # type: ignore[call-overload]
    _tamper(populated / "genesis.db", f"DELETE FROM audit_events WHERE seq > {last - 3}")
    code, report = _verify()
    assert (code, report["kind"], report["first_bad_seq"]) == (1, "truncated", last - 2)


def test_a_cut_tail_whose_heads_and_tree_went_too_is_found_against_the_head_log(populated: Path) -> None:
    code, report = _verify()
    last = int(report["last_seq"])  # type: ignore[call-overload]
    _tamper(populated / "genesis.db", f"DELETE FROM audit_events WHERE seq > {last - 3}",
            f"DELETE FROM audit_heads WHERE size > {last - 3}", "DELETE FROM audit_tree")
    code, alone = _verify()
    assert code == 0, alone  # the database alone cannot tell ...
    code, report = _verify("--against", str(populated / "audit-heads.log"))
    assert (code, report["kind"], report["first_bad_seq"]) == (1, "truncated", last - 2)  # ... the head log can


def test_an_export_file_verifies_with_no_database_and_its_tampering_is_named(populated: Path) -> None:
    out = populated / "export.ndjson"
    summary = json.loads(runner.invoke(app, ["audit", "export", str(out), "--json"]).output)
    assert summary["tree_size"] == summary["last_seq"]
    vkey = runner.invoke(app, ["audit", "public-key", "--vkey"]).output.strip()
    (populated / "genesis.db").rename(populated / "moved.db")  # no database from here on
    code, report = _verify("--file", str(out), "--key", vkey)
    assert code == 0 and report["heads_in_file"] == 1 and report["covered_size"] == summary["last_seq"]
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join([*lines[:-4], *lines[-2:]]))  # the last two events cut
    code, report = _verify("--file", str(out), "--key", vkey)
    assert (code, report["kind"], report["first_bad_seq"]) == (1, "truncated", summary["last_seq"] - 1)
    code, report = _verify("--file", str(populated / "nothing.ndjson"), "--key", vkey)
    assert code == 2
    bad = runner.invoke(app, ["audit", "verify", "--file", str(out), "--key", "not-a-vkey"])
    assert bad.exit_code == 2 and "vkey" in bad.output


def test_verify_file_without_a_key_here_asks_for_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    (tmp_path / "x.ndjson").write_text("{}\n")
    result = runner.invoke(app, ["audit", "verify", "--file", str(tmp_path / "x.ndjson")])
    assert result.exit_code == 2 and "--key VKEY" in result.output
    assert not (tmp_path / "empty" / "audit-signing.key").exists()  # no key was made up to verify with
    get_settings.cache_clear()


def test_head_on_demand_is_a_note_the_printed_vkey_verifies(populated: Path) -> None:
    from genesis.audit.note import open_checkpoint, parse_vkey

    result = runner.invoke(app, ["audit", "head"])  # JSON: stdout is not a terminal here
    assert result.exit_code == 0, result.output
    note = _json_lines(result.output)[-1]["note"]
    assert isinstance(note, str)
    vkey = runner.invoke(app, ["audit", "public-key", "--vkey"]).output.strip()
    opened = open_checkpoint(note, parse_vkey(vkey))
    assert opened.origin.startswith("genesis-audit/")
    events = _json_lines(runner.invoke(app, ["audit", "query", "--action", "audit.head", "--json"]).output)
    assert events and events[-1]["seq"] <= opened.size  # the operator's request is inside the head it made
    assert note in (populated / "audit-heads.log").read_text("utf-8")


HOSTILE_NAME = "eve\x1b[2K\r       7 2026-01-01T00:00:00Z success\u202e\x85"


def test_query_and_tail_text_views_escape_control_characters_in_every_field(
    populated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from genesis.api.app import create_app
    from genesis.config import Settings

    settings = Settings(_env_file=None, data_dir=populated, admin_password="admin-Pa55word-for-tests",  # type: ignore[call-arg]
                        log_console=False)
    with TestClient(create_app(settings)) as client:
        client.post("/token", data={"grant_type": "password", "username": HOSTILE_NAME, "password": "x"},
                    headers={"User-Agent": "agent\x1b]0;owned\x07"})
    monkeypatch.setattr("genesis.cli.audit._as_json", lambda flag: flag)  # the text view, as on a terminal
    for command in (["audit", "query", "--action", "auth.login.failed"], ["audit", "tail", "-n", "5"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        assert "user:eve\\x1b[2K\\x0d" in result.output and "\\u202e\\x85" in result.output
        raw = [ch for ch in result.output if ch != "\n" and (ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f
                                                             or ch in "\u202e\u2028\u2029")]
        assert raw == []
    listed = runner.invoke(app, ["users", "list"])
    assert "\x1b" not in listed.output


def test_the_csv_export_escapes_control_characters_and_neutralises_formulas(populated: Path) -> None:
    from fastapi.testclient import TestClient

    from genesis.api.app import create_app
    from genesis.config import Settings

    settings = Settings(_env_file=None, data_dir=populated, admin_password="admin-Pa55word-for-tests",  # type: ignore[call-arg]
                        log_console=False)
    with TestClient(create_app(settings)) as client:
        for name in ("=HYPERLINK(\"http://evil\",\"x\")", "@SUM(1)", "+1", "-1", "\tx", "line\u0085break\r"):
            client.post("/token", data={"grant_type": "password", "username": name, "password": "x"},
                        headers={"User-Agent": "=cmd|' /C calc'!A0"})
        assert runner.invoke(app, ["users", "create", "aud", "--role", "auditor", "--password-stdin"],
                             input="auditor-password\n").exit_code == 0
        admin = client.post("/token", data={"grant_type": "password", "username": "aud",
                                            "password": "auditor-password"}).json()["access_token"]
        export = client.get("/audit/export", params={"format": "csv"}, headers={"Authorization": f"Bearer {admin}"})
    assert export.status_code == 200
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(export.text)))
    failed = [r for r in rows if r["action"] == "auth.login.failed"]
    assert len(failed) == 6
    assert all(r["user_agent"].startswith("'=") for r in failed)
    assert not [c for r in rows for c in r.values() if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "\u0085" not in export.text and "line\\x85break\\x0d" in export.text
