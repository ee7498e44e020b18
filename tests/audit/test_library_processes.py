"""The seed's library use, for real: scripts that call ``log_action`` write into the server's own trail.

Each script is the README's example, run as a fresh ``python`` process beside a running ``genesis serve`` with the
same settings (data directory, database URL); several run at once. Afterwards the server sees their events, and
``genesis audit verify`` finds one intact chain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, PG_SKIP
from tests.live import LiveServer

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
SCRIPTS = 3
EVENTS_PER_SCRIPT = 40


def readme_example() -> str:
    """The Python block of the README's "As a library" section, exactly as a reader would copy it."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## As a library", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _script(tag: str) -> str:
    # The README's example, then more events of the same kind so that the processes really interleave.
    return readme_example() + (
        f"\nfor i in range({EVENTS_PER_SCRIPT - 1}):\n"
        f"    log_action('AUDIT', 'User executed trade', user='testuser', metadata={{'script': '{tag}', 'i': i}})\n"
    )


def _run_scripts(env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen([sys.executable, "-c", _script(f"s{n}")], env=env, cwd=cwd, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(SCRIPTS)]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return results


def _check(server: LiveServer, env: dict[str, str], cwd: Path) -> None:
    results = _run_scripts(env, cwd)
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
        # The example prints what get_audit_logs returned: at least its own event (read-your-writes).
        assert int(result.stdout.strip().splitlines()[-1]) >= 1, result.stdout
    token = httpx.post(f"{server.base_url}/token", timeout=30, data={
        "grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
    page = httpx.get(f"{server.base_url}/audit/events", params={"actor": "testuser", "limit": 1000}, timeout=30,
                     headers={"Authorization": f"Bearer {token}"}).json()
    assert len(page["events"]) == SCRIPTS * EVENTS_PER_SCRIPT
    assert {e["message"] for e in page["events"]} == {"User executed trade"}
    verify = subprocess.run([sys.executable, "-m", "genesis", "audit", "verify", "--json"], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=180, check=False)
    report = json.loads(verify.stdout)
    assert verify.returncode == 0 and report["ok"], verify.stdout + verify.stderr
    assert report["events_checked"] >= SCRIPTS * EVENTS_PER_SCRIPT


def test_scripts_beside_a_server_share_its_sqlite_trail(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env_extra = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false"}
    with LiveServer(data_dir=data, env=env_extra) as server:
        env = {**os.environ, "GENESIS_DATA_DIR": str(data), **env_extra}
        _check(server, env, tmp_path)


@pytest.mark.postgres
def test_scripts_beside_a_server_share_its_postgresql_trail(tmp_path: Path, pg_database_url: str) -> None:
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    data = tmp_path / "data"
    env_extra = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false",
                 "GENESIS_DATABASE_URL": pg_database_url}
    with LiveServer(data_dir=data, env=env_extra) as server:
        env = {**os.environ, "GENESIS_DATA_DIR": str(data), **env_extra}
        _check(server, env, tmp_path)
