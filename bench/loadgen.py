"""HTTP load: wrk when available (installed from Debian's packages when running as root), else a
bounded Python generator (asyncio, keep-alive, N connections) that reports the same numbers.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx responses and socket errors
    tool: str


def ensure_wrk() -> str | None:
    """Path of wrk; installs Debian's package when missing and running as root. None when unavailable."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 300, "check": False}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run(["apt-get", "update", "-q"], env=env, **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, **quiet)  # type: ignore[call-overload]
    return shutil.which("wrk")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> LoadResult:
    """Numbers from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    done = re.search(r"(\d+) requests in ([\d.]+\w+)", output)
    assert done is not None, output
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return LoadResult(int(done.group(1)), _ms(done.group(2)) / 1e3, rps,
                      _ms(p50.group(1)) if p50 else float("nan"), _ms(p99.group(1)) if p99 else float("nan"),
                      errors, "wrk")


def _lua(request: Request) -> str:
    def q(s: str) -> str:  # a Lua long string; the spaces keep "[ [" from reading as "[["
        return " [==[" + s + "]==] "

    lines = [f"wrk.method = {q(request.method)}"]
    if request.body:
        lines.append(f"wrk.body = {q(request.body.decode())}")
    lines += [f"wrk.headers[{q(k)}] = {q(v)}" for k, v in request.headers.items()]
    return "\n".join(lines) + "\n"


def run_wrk(wrk: str, base: str, request: Request, *, connections: int, threads: int, seconds: float) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(request))
    try:
        out = subprocess.run(
            [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s",
             "-s", script.name, base + request.path],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout
    finally:
        Path(script.name).unlink(missing_ok=True)
    return parse_wrk(out)


async def _connection(host: str, port: int, raw: bytes, deadline: float, latencies: list[float],
                      errors: list[int], max_requests: int) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        errors[0] += 1
        return
    try:
        while time.perf_counter() < deadline and len(latencies) < max_requests:
            began = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if not 200 <= status < 300:
                errors[0] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        errors[0] += 1
    finally:
        writer.close()


def run_python(base: str, request: Request, *, connections: int, seconds: float,
               max_requests: int = 1_000_000) -> LoadResult:
    """A bounded keep-alive load generator: ``connections`` loops for ``seconds`` (or ``max_requests``)."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    headers = {"Host": f"{host}:{port}", "Connection": "keep-alive", **request.headers}
    if request.body:
        headers["Content-Length"] = str(len(request.body))
    raw = (f"{request.method} {request.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
           + "\r\n").encode() + request.body
    latencies: list[float] = []
    errors = [0]

    async def main() -> float:
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(*(_connection(host, port, raw, deadline, latencies, errors, max_requests)
                               for _ in range(connections)))
        return time.perf_counter() - began

    elapsed = asyncio.run(main())
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else float("nan")

    return LoadResult(len(ordered), elapsed, len(ordered) / elapsed, pct(0.50), pct(0.99), errors[0], "python")


class LoadGenerator:
    """wrk (``-t2``) if it can be had, else the Python generator; ``tool`` says which in the output."""

    def __init__(self, *, prefer_wrk: bool = True) -> None:
        self.wrk = ensure_wrk() if prefer_wrk else None
        if self.wrk:
            self.tool = "wrk -t2"
        else:
            why = "wrk unavailable" if prefer_wrk else "tiny size"
            self.tool = f"Python asyncio load generator ({why})"

    def run(self, base: str, request: Request, *, connections: int, seconds: float) -> LoadResult:
        if self.wrk:
            return run_wrk(self.wrk, base, request, connections=connections, threads=2, seconds=seconds)
        return run_python(base, request, connections=connections, seconds=seconds)
