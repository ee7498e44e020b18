from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import api_load, loadgen
from bench.core import Scale
from tests.bench.conftest import assert_measured

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/hello
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.51ms    1.20ms  30.10ms   90.00%
    Req/Sec     2.46k   150.00     2.80k    70.00%
  Latency Distribution
     50%    6.40ms
     75%    6.90ms
     90%    7.50ms
     99%   11.95ms
  49001 requests in 10.01s, 7.01MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   4895.10
Transfer/sec:    717.05KB
"""


def test_wrk_output_is_parsed_into_rate_latency_and_errors() -> None:
    result = loadgen.parse_wrk(WRK_OUTPUT)
    assert result.requests == 49001 and result.rps == pytest.approx(4895.10)
    assert result.p50_ms == pytest.approx(6.40) and result.p99_ms == pytest.approx(11.95)
    assert result.errors == 3 and result.seconds == pytest.approx(10.01)


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_python_load_generator_is_bounded_and_counts_requests(local_server: str) -> None:
    result = loadgen.run_python(local_server, loadgen.Request("GET", "/"), connections=4, seconds=0.3)
    assert result.requests > 0 and result.errors == 0 and result.seconds < 5


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_runs_against_a_local_server(local_server: str) -> None:
    result = loadgen.run_wrk(shutil.which("wrk") or "wrk", local_server, loadgen.Request("GET", "/"),
                             connections=2, threads=1, seconds=1)
    assert result.requests > 0


def test_api_bench_runs_once_at_tiny_size(tiny: Scale, tmp_path: Path) -> None:
    assert_measured(api_load.run(tiny))


@pytest.mark.skipif(not (os.environ.get("GENESIS_BENCH_DATABASE_URL") and os.environ.get("GENESIS_BENCH_REDIS_URL")),
                    reason="GENESIS_BENCH_DATABASE_URL / GENESIS_BENCH_REDIS_URL not set (PostgreSQL + Redis)")
def test_postgres_variant_runs_once(tmp_path: Path) -> None:
    gen = loadgen.LoadGenerator(prefer_wrk=False)
    assert_measured(api_load.postgres_figures(gen, tmp_path, 1.0))


def test_wrk_script_quotes_headers_and_body_as_lua_long_strings() -> None:
    script = loadgen._lua(loadgen.Request("POST", "/x", b'{"a": [1]}', {"Authorization": "Bearer t"}))
    assert "wrk.headers[ [==[Authorization]==] ] =  [==[Bearer t]==] " in script
    assert "[[" not in script  # "wrk.headers[[==[" would open a long string: the bug this guards
