"""``st run`` against a live ``genesis serve``: every operation, every phase (examples, coverage, fuzzing, stateful).

The same checks as in-process (``--checks all`` with ``positive_data_acceptance`` replaced by the domain-rule
variant and the strict-JSON check from ``st_checks``, loaded through SCHEMATHESIS_HOOKS), a fixed seed, a
GENESIS_FUZZ_EXAMPLES budget per operation, and ``--max-response-time``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.live import LiveServer
from tests.reliability import st_checks
from tests.reliability.conftest import FUZZ_EXAMPLES, FUZZ_SEED

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_RESPONSE_SECONDS = float(os.environ.get("GENESIS_FUZZ_MAX_RESPONSE_SECONDS", "5"))


def _st() -> str:
    beside = Path(sys.executable).with_name("st")
    found = str(beside) if beside.exists() else shutil.which("st")
    if found is None:
        pytest.skip("the schemathesis CLI (st) is not installed")
    return found


def test_fuzz_every_operation_against_a_live_server(tmp_path: Path) -> None:
    env = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false",
           "GENESIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE": "1000000", "GENESIS_LOGIN_FAILURES_PER_ACCOUNT_PER_HOUR": "100"}
    with LiveServer(data_dir=tmp_path / "data", env=env) as server:
        login = httpx.post(f"{server.base_url}/token", timeout=30,
                           data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        spec = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
        operations = sum(len(methods) for methods in spec["paths"].values())
        command = [
            _st(), "--config-file", str(CONFIG), "run", f"{server.base_url}/openapi.json",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", str(FUZZ_EXAMPLES), "--seed", str(FUZZ_SEED), "--generation-database", "none",
            "--workers", "1", "--request-timeout", "30", "--max-response-time", str(MAX_RESPONSE_SECONDS),
            "--no-color", "--report", "junit", "--report-dir", str(tmp_path / "report"),
        ]
        run_env = {**os.environ, "SCHEMATHESIS_HOOKS": st_checks.__file__}
        # cwd: schemathesis keeps a failure cache in ./.schemathesis; keep it out of the source tree.
        result = subprocess.run(command, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=840,
                                check=False)
        log = server.output()
    summary = result.stdout[-12000:]
    assert result.returncode == 0, f"{summary}\n{result.stderr[-3000:]}\n--- server ---\n{log}"
    generated = re.search(r"(\d+) generated", summary)
    print(f"\nst run: {generated.group(0) if generated else '?'} over {operations} operations")
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested is not None and int(tested.group(1)) == operations, summary
    assert "Traceback" not in log, log
