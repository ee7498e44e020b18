"""Power loss, not just a crash (property 42): the data behind an acknowledgement is fsynced before the ack.

``kill -9`` (test_faults_kill.py) still lets the kernel flush dirty pages, so it cannot show that a commit
reached the disk. Without LazyFS here, this test watches the system calls of a live ``genesis serve`` with
strace: between reading a request and writing its response, every write to a SQLite write-ahead log (the
audit event, the price rows) is followed by an fdatasync/fsync of that file. A power cut after the ack
therefore cannot lose what was acknowledged.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.live import LiveServer, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
_CALL = re.compile(r"^(\d+)\s+\S+\s+(\w+)\((\d+)<([^>]*)>")


def _attach(pid: int, out: Path, err: Path) -> subprocess.Popen[bytes]:
    with err.open("wb") as stderr:
        tracer = subprocess.Popen(
            ["strace", "-f", "-p", str(pid), "-tt", "-y", "-s", "64", "-o", str(out),
             "-e", "trace=read,recvfrom,write,writev,sendto,pwrite64,fsync,fdatasync"],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )
    if not wait_until(lambda: "attached" in err.read_text(errors="replace") or tracer.poll() is not None,
                      timeout=10):
        tracer.kill()
        pytest.skip("strace did not attach")
    if tracer.poll() is not None:
        pytest.skip(f"strace cannot trace here (ptrace refused?): {err.read_text(errors='replace')[-300:]}")
    time.sleep(0.5)  # every thread attached
    return tracer


def _exchange(lines: list[str], marker: str) -> list[tuple[str, str, str]]:
    """The (syscall, fd, path) calls from reading the request holding ``marker`` to writing its response."""
    start = next(i for i, line in enumerate(lines) if marker in line and re.search(r"\b(read|recvfrom)\(", line))
    match = _CALL.match(lines[start])
    assert match is not None, lines[start]
    socket_fd = match.group(3)
    calls = []
    for line in lines[start + 1:]:
        found = _CALL.match(line)
        if found is None:
            continue
        name, fd, path = found.group(2), found.group(3), found.group(4)
        if fd == socket_fd and name in ("write", "writev", "sendto") and "HTTP/1.1" in line:
            return calls
        calls.append((name, fd, path))
    raise AssertionError(f"no response to {marker} in the trace")


def _unsynced_wal_writes(calls: list[tuple[str, str, str]]) -> list[str]:
    """WAL files written in ``calls`` and not fsynced after their last write."""
    dirty: set[str] = set()
    for name, _fd, path in calls:
        if name == "pwrite64" and path.endswith("-wal"):
            dirty.add(path)
        elif name in ("fdatasync", "fsync"):
            dirty.discard(path)
    return sorted(dirty)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
def test_every_acknowledged_write_is_fsynced_before_its_response(tmp_path: Path) -> None:
    env = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false"}
    with LiveServer(data_dir=tmp_path / "data", env=env) as server:
        token = httpx.post(f"{server.base_url}/token", timeout=30, data={
            "grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        tracer = _attach(server.proc.pid, tmp_path / "trace.txt", tmp_path / "strace.err")  # type: ignore[union-attr]
        try:
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
                for i in range(3):
                    point = {"timestamp": f"2025-01-0{i + 1}T00:00:00Z", "price": 1.0 + i}
                    assert client.post(f"/prices/DURABLE{i}", json={"points": [point]}).status_code == 200
                assert client.get("/prices/DURABLE0").status_code == 200  # a read: only its audit event
            time.sleep(0.3)
        finally:
            tracer.terminate()
            tracer.wait(timeout=10)
    lines = (tmp_path / "trace.txt").read_text(errors="replace").splitlines()
    for marker in ("POST /prices/DURABLE0", "POST /prices/DURABLE1", "POST /prices/DURABLE2", "GET /prices/DURABLE0"):
        calls = _exchange(lines, marker)
        syncs = [path for name, _fd, path in calls if name in ("fdatasync", "fsync") and path.endswith("-wal")]
        # A price write commits a started event, the rows and the outcome event; a read commits its event.
        assert len(syncs) >= (3 if marker.startswith("POST") else 1), (marker, calls)
        assert _unsynced_wal_writes(calls) == [], (marker, calls)
