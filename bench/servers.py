"""Servers under test: ``genesis serve`` on a temp data dir and the bare hello app, each in its own process group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench.core import descendants, proc_status

ADMIN_PASSWORD = "bench-admin-password-1234"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310  # loopback only
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


class Server:
    """A server process (and its workers) on a free loopback port."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, ready_path: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115  # closed in stop()
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port)], env=env, cwd=cwd, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(ready_path)

    def _wait_ready(self, path: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log_file.close()
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                if http("GET", self.base + path, timeout=2.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s: {self.log.read_text()[-2000:]}")

    def worker_peak_rss(self) -> int:
        """Largest peak RSS (VmHWM) among the server's processes, in bytes."""
        return max((proc_status(pid).get("VmHWM", 0) for pid in descendants(self.proc.pid)), default=0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log_file.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESIS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def start_genesis(data_dir: Path, *, workers: int = 1, env: dict[str, str] | None = None) -> Server:
    """``python -m genesis serve`` with rate limits off, console logging off and a known admin password."""
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "GENESIS_DATA_DIR": str(data_dir),
        "GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GENESIS_LOG_CONSOLE": "false",
        "GENESIS_RATE_LIMITS_ENABLED": "false",
        "GENESIS_ACCESS_TOKEN_TTL_MINUTES": "240",
        "GENESIS_MAX_BODY_BYTES": str(64 * 1024 * 1024),
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "genesis", "serve", "--workers", str(workers)]
    return Server(cmd, _clean_env(settings), data_dir, "/health", data_dir / "server.log")


def start_hello(tmp: Path, *, workers: int = 1, max_connections: int = 2048) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "bench.hello_app", "--workers", str(workers), "--max-connections",
           str(max_connections)]
    return Server(cmd, _clean_env({}), tmp, "/hello", tmp / "hello.log")


def admin_token(server: Server) -> str:
    """An access token for the bootstrap admin (password grant)."""
    form = urllib.parse.urlencode({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD})
    status, body = http("POST", server.base + "/token", body=form.encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        raise RuntimeError(f"login failed ({status}): {body[:300]!r}")
    token: str = json.loads(body)["access_token"]
    return token


def json_request(server: Server, method: str, path: str, token: str, payload: Any = None) -> tuple[int, Any]:
    body = None if payload is None else json.dumps(payload).encode()
    status, raw = http(method, server.base + path, body=body,
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return status, json.loads(raw) if raw else None
