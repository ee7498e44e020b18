"""`genesis serve` refuses at once, in one line, what would otherwise fail later or silently; `--help` is light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ADMIN_PASSWORD
from tests.live import LiveServer, free_port


def _serve(data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENESIS_DATA_DIR": str(data_dir), "GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "GENESIS_LOG_CONSOLE": "false"}
    return subprocess.run([sys.executable, "-m", "genesis", "serve", "--port", str(port)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_busy_port_is_one_clear_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with LiveServer(data_dir=tmp_path / "first", env={"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD}) as running:
        result = _serve(tmp_path / "second", running.port)
    assert result.returncode == 4  # Conflict's exit code
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and str(running.port) in lines[0]
    assert "startup" not in result.stderr.lower()  # nothing started before the refusal


def test_a_second_server_on_the_same_sqlite_data_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with LiveServer(data_dir=data, env={"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD}) as running:
        result = _serve(data, free_port())
        assert result.returncode == 4, result.stderr
        assert "already serves the data directory" in result.stderr and f"pid {running.proc.pid}" in result.stderr  # type: ignore[union-attr]
    # Once the first has stopped, the directory is free again.
    with LiveServer(data_dir=data, env={"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD}):
        pass


def test_help_imports_no_server_or_analytics_code() -> None:
    probe = ("import sys\nfrom genesis.cli.main import app\n"
             "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('genesis', 'sqlalchemy', 'talib', 'numpy', 'fastapi', 'uvicorn', 'psycopg', 'rich'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert "Commands:" in result.stdout
    assert result.stdout.strip().splitlines()[-1].split() == ["genesis", "genesis.cli", "genesis.cli.main"]
