"""The head log file: complete records only, torn writes isolated, several processes appending at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from genesis.audit import headlog
from tests.audit import workers

N1 = "genesis.test/audit\n3\nroot=\n\n\u2014 genesis.test/audit c2lnMQ==\n"
N2 = "genesis.test/audit\n4\nroot2\n\n\u2014 genesis.test/audit c2lnMg==\n\u2014 witness Y29z\n"


def test_records_are_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "heads.log"
    assert headlog.read(path).notes == []  # no file yet: no record
    headlog.append_note(path, N1)
    headlog.append_note(path, N2)
    assert path.read_text("utf-8") == N1 + "\n" + N2 + "\n"
    log = headlog.read(path)
    assert (log.notes, log.damaged) == ([N1, N2], 0)
    assert headlog.read_tail(path, window=len(N2) + 5).notes == [N2]


def test_a_torn_record_is_isolated_and_later_records_are_whole(tmp_path: Path) -> None:
    path = tmp_path / "heads.log"
    headlog.append_note(path, N1)
    with open(path, "ab") as handle:
        handle.write(N2.encode()[:12])  # a crash in the middle of a write
    assert headlog.read(path).notes == [N1] and headlog.read(path).damaged == 1
    headlog.append_note(path, N2)
    log = headlog.read(path)
    assert (log.notes, log.damaged) == ([N1, N2], 1)
    with open(path, "ab") as handle:
        handle.write(N1.encode())  # a whole note whose empty line was not written
    headlog.append_note(path, N2)
    assert headlog.read(path).notes == [N1, N2, N1, N2]


def test_only_whole_notes_are_appended(tmp_path: Path) -> None:
    for bad in ("no signatures\n", N1 + N2, N1[:-1]):
        with pytest.raises(ValueError, match="one signed note"):
            headlog.append_note(tmp_path / "heads.log", bad)
    assert not (tmp_path / "heads.log").exists()


def test_a_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not a head log"):
        headlog.read(tmp_path / "bin")


@pytest.mark.slow
def test_processes_appending_at_once_leave_only_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "heads.log"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        pool.starmap(workers.append_head_notes, [(str(path), tag, 200) for tag in ("a", "b", "c")])
    log = headlog.read(path)
    assert log.damaged == 0 and len(log.notes) == 600
    for tag in "abc":
        sizes = [int(n.split("\n")[1]) for n in log.notes if n.startswith(f"genesis.test/{tag}\n")]
        assert sizes == list(range(200))  # each writer's records whole and in its order
