"""File sinks: rotation by size and by UTC day, shared safely by several processes."""

from __future__ import annotations

import gzip
import json
import multiprocessing
from collections import Counter
from pathlib import Path

import pytest

from genesis.audit.sinks import DailyFileSink, RotatingFileSink
from tests.audit import workers

DAY = 86_400.0
T0 = 1_700_006_400.0  # 2023-11-15T00:00:00Z


def read_all(paths: list[Path]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        text = data.decode("utf-8")
        assert text == "" or text.endswith("\n")
        lines.extend(text.split("\n")[:-1])
    return lines


def test_size_rotation_keeps_whole_lines_and_the_newest_backups(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path / "app.log", max_bytes=100, backups=3)
    sink.write([f"line {i:02d} {'x' * 30}\n".encode() for i in range(12)])
    sink.close()
    files = sorted(tmp_path.glob("app.log*"))
    assert [f.name for f in files] == ["app.log", "app.log.1", "app.log.2", "app.log.3"]
    assert all(f.stat().st_size <= 100 for f in files)
    newest_first = read_all([tmp_path / "app.log", *(tmp_path / f"app.log.{i}" for i in (1, 2, 3))])
    assert sorted(newest_first) == [f"line {i:02d} {'x' * 30}" for i in range(4, 12)]


def test_rotation_without_backups_starts_afresh(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path / "app.log", max_bytes=50, backups=0)
    sink.write([b"a" * 30 + b"\n", b"b" * 30 + b"\n"])
    sink.close()
    assert (tmp_path / "app.log").read_bytes() == b"b" * 30 + b"\n"


def test_gzip_rotation_compresses_backups(tmp_path: Path) -> None:
    sink = RotatingFileSink(tmp_path / "app.log", max_bytes=64, backups=5, compress=True)
    for i in range(10):
        sink.write([f"{i} {'y' * 40}\n".encode()])
    sink.close()
    assert sorted(p.name for p in tmp_path.glob("app.log.*")) == [f"app.log.{i}.gz" for i in range(1, 6)]
    assert len(read_all(sorted(tmp_path.glob("app.log*")))) == 6


def test_a_process_notices_another_rotated_the_file(tmp_path: Path) -> None:
    one = RotatingFileSink(tmp_path / "app.log", max_bytes=60, backups=10)
    two = RotatingFileSink(tmp_path / "app.log", max_bytes=60, backups=10)
    one.write([b"1" * 40 + b"\n"])
    two.write([b"2" * 40 + b"\n"])  # rotates: one's descriptor now points at app.log.1
    one.write([b"3" * 10 + b"\n"])
    one.close()
    two.close()
    assert (tmp_path / "app.log").read_bytes() == b"2" * 40 + b"\n" + b"3" * 10 + b"\n"


def test_daily_files_switch_at_utc_midnight_compress_and_prune(tmp_path: Path) -> None:
    now = [T0 + 3600]
    sink = DailyFileSink(tmp_path, backups=2, compress=True, clock=lambda: now[0])
    for day in range(5):
        now[0] = T0 + day * DAY + 3600
        sink.write([f"day {day}\n".encode()])
        now[0] = T0 + (day + 1) * DAY - 0.001
        sink.write([f"late {day}\n".encode()])
    sink.close()
    names = sorted(p.name for p in tmp_path.glob("genesis-*"))
    assert names == ["genesis-2023-11-17.log.gz", "genesis-2023-11-18.log.gz", "genesis-2023-11-19.log"]
    assert read_all([tmp_path / "genesis-2023-11-19.log"]) == ["day 4", "late 4"]


@pytest.mark.slow
def test_four_processes_rotating_the_same_files_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    values = {
        "data_dir": str(tmp_path / "data"), "log_console": False, "log_file_max_bytes": 4096,
        "log_file_backups": 1000, "log_gzip": True, "log_daily_backups": 30,
    }  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    per = 300
    start = ctx.Event()
    procs = [ctx.Process(target=workers.log_many_lines, args=(values, per, f"p{k}", start)) for k in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    logs = tmp_path / "data" / "logs"
    rotated = sorted(logs.glob("genesis.log*"))
    assert any(p.name.endswith(".gz") for p in rotated) and len(rotated) > 20
    for files in (rotated, sorted(logs.glob("genesis-*.log*"))):
        records = [json.loads(line) for line in read_all(files)]
        tagged = Counter(r["message"].split()[1] for r in records if r["logger"] == "genesis.test.rotation")
        assert len(tagged) == 4 * per and set(tagged.values()) == {1}
