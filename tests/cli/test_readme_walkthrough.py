"""The README's curl walk-through, pasted as is into a shell, runs to its end against a real server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"
PASSWORD = "change-me-Pa55word"  # what the README tells the reader to start the server with


def walkthrough() -> str:
    section = README.read_text(encoding="utf-8").split("## A walk through with curl", 1)[1]
    blocks = section.split("```sh\n")[1:]
    assert "make run" in blocks[0]  # the first block starts the server; the second is the walk-through
    return blocks[1].split("```", 1)[0]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_walkthrough_runs_to_its_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with LiveServer(data_dir=data, env={"GENESIS_ADMIN_PASSWORD": PASSWORD}) as server:
        script = walkthrough().replace("http://127.0.0.1:8000", server.base_url)
        work = tmp_path / "work"
        work.mkdir()
        (work / ".venv").symlink_to(sys.prefix)  # `.venv/bin/genesis` as in a clone
        env = {**os.environ, "GENESIS_DATA_DIR": str(data), "GENESIS_LOG_CONSOLE": "false"}
        env.pop("ADMIN_PASSWORD", None)
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work, env=env,
                                capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == '{"result":103.0}'  # as the README says
    assert '"inserted":2' in lines[1] and '"symbol":"BTC/USD"' in lines[2]
    assert '"token_type":"bearer"' in lines[3] and '"access_token"' in lines[3]  # the machine client logged in
    assert lines[-1] == "401"  # the revoked token is refused
