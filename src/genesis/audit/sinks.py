"""Log sinks: console, size-rotated file and daily file, safe across processes.

Every file write follows one protocol, so several worker processes can share the
files: take ``flock`` on a sidecar lock file; if the path's inode is not the one
our descriptor has open (another process rotated it), reopen; rotate if the batch
would overflow; write whole lines with ``os.write`` on an ``O_APPEND`` descriptor;
unlock. Rotation therefore never splits or loses a line.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Protocol, TextIO

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class Sink(Protocol):
    """Writes batches of complete lines; raises ``OSError`` when it cannot."""

    name: str

    def write(self, lines: Sequence[bytes]) -> None: ...

    def close(self) -> None: ...


class ConsoleSink:
    """Lines to a text stream (stderr by default)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, lines: Sequence[bytes]) -> None:
        stream = self._stream or sys.stderr
        stream.write(b"".join(lines).decode("utf-8"))
        stream.flush()

    def close(self) -> None:
        return None


def _write_all(fd: int, data: bytes) -> None:
    """Append ``data`` whole or not at all (the caller holds the file lock).

    A write cut short (ENOSPC, EIO) would leave a torn line that the next write
    continues; truncating back to where this append started keeps every line whole.
    """
    start = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError:
        with suppress(OSError):
            os.ftruncate(fd, start)
        raise


class _SharedFile:
    """An O_APPEND descriptor on ``path`` that follows renames done by other processes."""

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.lock_path = lock_path
        self.fd: int | None = None

    @contextmanager
    def locked(self) -> Iterator[int]:
        """The lock held and a descriptor on the file currently at ``path``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o640)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                yield self._current()
            except OSError:
                self.reset()
                raise
        finally:
            os.close(lock_fd)  # closing releases the flock

    def _current(self) -> int:
        if self.fd is not None:
            try:
                st = os.stat(self.path)
                fst = os.fstat(self.fd)
                if (st.st_ino, st.st_dev) == (fst.st_ino, fst.st_dev):
                    return self.fd
            except FileNotFoundError:
                pass
            self.reset()
        self.fd = os.open(self.path, _OPEN_FLAGS, 0o640)
        return self.fd

    def reset(self) -> None:
        if self.fd is not None:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _gzip_into(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with open(src, "rb") as fin, gzip.open(tmp, "wb", compresslevel=1) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    os.replace(tmp, dest)


class RotatingFileSink:
    """``genesis.log`` rotated by size into ``genesis.log.1`` ... ``.N`` (``.gz`` when gzip)."""

    name = "file"

    def __init__(self, path: Path, *, max_bytes: int, backups: int, compress: bool = False) -> None:
        self.path = Path(path)
        self.max_bytes = max(1, max_bytes)
        self.backups = max(0, backups)
        self.compress = compress
        self._file = _SharedFile(self.path, self.path.with_name(f".{self.path.name}.lock"))

    def write(self, lines: Sequence[bytes]) -> None:
        with self._file.locked() as fd:
            size = os.fstat(fd).st_size
            chunk: list[bytes] = []
            pending = 0
            for line in lines:
                if size + pending + len(line) > self.max_bytes and size + pending > 0:
                    if chunk:
                        _write_all(fd, b"".join(chunk))
                        chunk, pending = [], 0
                    fd = self._rotate()
                    size = 0
                chunk.append(line)
                pending += len(line)
            if chunk:
                _write_all(fd, b"".join(chunk))

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}{'.gz' if self.compress else ''}")

    def _rotate(self) -> int:
        """Shift backups up by one and start a new file (the lock is held)."""
        self._file.reset()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                if self._backup(index).exists():
                    os.replace(self._backup(index), self._backup(index + 1))
            if self.compress:
                _gzip_into(self.path, self._backup(1))
                self.path.unlink()
            else:
                os.replace(self.path, self._backup(1))
        return self._file._current()

    def close(self) -> None:
        self._file.reset()


class DailyFileSink:
    """``genesis-YYYY-MM-DD.log`` per UTC day; older days gzipped (optionally) and pruned.

    The file is chosen by the clock at write time, under the lock, so all processes
    switch at midnight UTC together and no file is written after it was compressed.
    """

    name = "daily"

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str = "genesis",
        backups: int = 30,
        compress: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.backups = max(0, backups)
        self.compress = compress
        self.clock = clock
        self._day = ""
        self._lock_path = self.directory / f".{prefix}-daily.lock"
        self._file: _SharedFile | None = None

    def path_for(self, day: str) -> Path:
        return self.directory / f"{self.prefix}-{day}.log"

    def write(self, lines: Sequence[bytes]) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime(self.clock()))
        if day != self._day or self._file is None:
            if self._file is not None:
                self._file.reset()
            self._file = _SharedFile(self.path_for(day), self._lock_path)
            self._day = day
            with self._file.locked() as fd:
                self._tidy(day)
                _write_all(fd, b"".join(lines))
            return
        with self._file.locked() as fd:
            _write_all(fd, b"".join(lines))

    def _tidy(self, today: str) -> None:
        """Compress finished days and keep the newest ``backups`` of them (lock held)."""
        head = f"{self.prefix}-"
        days: dict[str, list[Path]] = {}
        for entry in self.directory.glob(f"{head}????-??-??.log*"):
            day = entry.name[len(head) : len(head) + 10]
            if day < today and entry.name.endswith((".log", ".log.gz")):
                days.setdefault(day, []).append(entry)
        for day in sorted(days):
            if self.compress:
                plain = self.path_for(day)
                if plain.exists():
                    _gzip_into(plain, plain.with_name(plain.name + ".gz"))
                    plain.unlink()
                    days[day] = [plain.with_name(plain.name + ".gz")]
        for day in sorted(days)[: max(0, len(days) - self.backups)]:
            for entry in days[day]:
                entry.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.reset()
