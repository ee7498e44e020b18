"""Log sinks: the console and one rotating file, safe across processes.

Every file write follows one protocol, so several worker processes can share the
file: take ``flock`` on a sidecar lock file; if the path's inode is not the one
our descriptor has open (another process rotated it), reopen; rotate if the file
was last written on an earlier UTC day or the batch would overflow; write whole
lines with ``os.write`` on an ``O_APPEND`` descriptor; unlock. A rotation commits
with one ``rename`` and every later step (compression, pruning) can be redone by
the next rotation, so a process that dies at any instruction loses or duplicates
no line that was written. ``docs/logging.md`` explains the protocol.
"""

from __future__ import annotations

import fcntl
import gzip
import logging
import os
import re
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


class LineFormatter(Protocol):
    """Turns a record into one complete line of bytes."""

    def format_line(self, record: logging.LogRecord) -> bytes: ...


class ConsoleSink:
    """Lines to a text stream (stderr by default), rendered by ``formatter`` when given (the TTY console)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None, *, formatter: LineFormatter | None = None) -> None:
        self._stream = stream
        self.formatter = formatter

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
                yield self.current()
            except OSError:
                self.reset()
                raise
        finally:
            os.close(lock_fd)  # closing releases the flock

    def current(self) -> int:
        """A descriptor on the file now at ``path`` (the caller holds the lock)."""
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


_DAY = 86_400


def _gzip_into(src: Path, dest: Path) -> None:
    """Compress ``src`` into ``dest``, which appears complete or not at all (fsynced before the rename)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as raw:
            with gzip.GzipFile(filename=src.name, mode="wb", fileobj=raw, compresslevel=1) as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RotatingFileSink:
    """``genesis.log`` rotated by size and by UTC day into ``genesis-YYYY-MM-DD.NNN.log[.gz]``.

    The live file is rotated before a batch would make it pass ``max_bytes``, and at the
    first write of a UTC day (``daily``) when it was last written on an earlier day; the
    backup is named after that last-write day and numbered within it (001, 002, ...), so
    the names sort in the order of their lines. Backups beyond ``backups`` files or
    ``max_total_bytes`` bytes (0: no byte cap) are deleted, oldest first.
    """

    name = "file"

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        backups: int,
        max_total_bytes: int = 0,
        daily: bool = True,
        compress: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max(1, max_bytes)
        self.backups = max(0, backups)
        self.max_total_bytes = max(0, max_total_bytes)
        self.daily = daily
        self.compress = compress
        self.clock = clock
        stem, dot, suffix = self.path.name.rpartition(".")
        self._stem, self._suffix = (stem, dot + suffix) if stem else (self.path.name, "")
        self._backup_name = re.compile(
            rf"^{re.escape(self._stem)}-(\d{{4}}-\d\d-\d\d)\.(\d{{3,}}){re.escape(self._suffix)}(\.gz)?$"
        )
        self._file = _SharedFile(self.path, self.path.with_name(f".{self.path.name}.lock"))

    def write(self, lines: Sequence[bytes]) -> None:
        with self._file.locked() as fd:
            st = os.fstat(fd)
            size = st.st_size
            if self.daily and size and st.st_mtime < self.clock() // _DAY * _DAY:
                fd, size = self._rotate(), 0
            chunk: list[bytes] = []
            pending = 0
            for line in lines:
                if size + pending + len(line) > self.max_bytes and size + pending > 0:
                    if chunk:
                        _write_all(fd, b"".join(chunk))
                        chunk, pending = [], 0
                    fd, size = self._rotate(), 0
                chunk.append(line)
                pending += len(line)
            if chunk:
                _write_all(fd, b"".join(chunk))

    def activity(self) -> tuple[int, int] | None:
        """``(inode, size)`` of the live file: changes when any process writes or rotates it."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size

    def backup_files(self) -> list[Path]:
        """The rotated files, oldest first (a plain file and its ``.gz`` twin both listed)."""
        found: list[tuple[str, int, bool, Path]] = []
        with os.scandir(self.path.parent) as entries:
            for entry in entries:
                match = self._backup_name.match(entry.name)
                if match:
                    found.append((match[1], int(match[2]), match[3] is not None, Path(entry.path)))
        return [item[3] for item in sorted(found)]

    def _rotate(self) -> int:
        """Move the live file aside as the next backup and open a new one (the lock is held).

        The ``rename`` is the commit: before it every line is in the live file, after it in the
        backup. A crash after it leaves at worst an uncompressed backup or a plain file beside its
        complete ``.gz`` twin, which the next rotation's :meth:`_tidy` finishes.
        """
        fd = self._file.current()
        day = time.strftime("%Y-%m-%d", time.gmtime(os.fstat(fd).st_mtime))
        names = (self._backup_name.match(p.name) for p in self.backup_files())
        seq = 1 + max((int(m[2]) for m in names if m is not None and m[1] == day), default=0)
        os.rename(self.path, self.path.with_name(f"{self._stem}-{day}.{seq:03d}{self._suffix}"))
        self._file.reset()
        self._tidy()
        return self._file.current()

    def _tidy(self) -> None:
        """Prune to the caps, then compress what is left (lock held; idempotent, so a crash is finished later)."""
        for stale in self.path.parent.glob(f".{self._stem}-*{self._suffix}.gz.*.tmp"):
            stale.unlink(missing_ok=True)  # a compression cut short; its source is still there
        files = self.backup_files()
        plain = {p.name for p in files if not p.name.endswith(".gz")}
        for path in [p for p in files if p.name.endswith(".gz") and p.name[:-3] in plain]:
            # A plain backup beside its complete twin: the compressing process died before unlinking it.
            files.remove(path.with_name(path.name[:-3]))
            path.with_name(path.name[:-3]).unlink(missing_ok=True)
        for path in files[: max(0, len(files) - self.backups)]:
            path.unlink(missing_ok=True)
        keep = files[max(0, len(files) - self.backups) :]
        if self.compress:
            for index, path in enumerate(keep):
                if not path.name.endswith(".gz"):
                    keep[index] = path.with_name(path.name + ".gz")
                    _gzip_into(path, keep[index])
                    path.unlink()
        if self.max_total_bytes:
            sizes = [p.stat().st_size for p in keep]
            total = sum(sizes)
            for path, size in zip(keep, sizes, strict=True):
                if total <= self.max_total_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size

    def close(self) -> None:
        self._file.reset()
