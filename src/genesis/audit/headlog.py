"""The head log: an append-only text file of signed tree heads, kept where the database's writer cannot rewrite them.

Format (``docs/audit-format.md``, "The head log"): a sequence of records, each one signed note
(a C2SP checkpoint, ending in ``\\n``) followed by one more ``\\n``, so records are separated by an
empty line. A note's text and signature block hold no empty line, so splitting the file at
``\\n\\n`` yields text, signatures, text, signatures... A record is complete once the empty line
after it is written.

Several processes append safely: each append takes an exclusive ``flock`` on the file, writes the
record in one ``write`` (``O_APPEND``) and ``fsync``s before releasing it. A record torn by a crash
(the file does not end with an empty line) is closed with an empty line by the next append, so
it stands alone and readers skip it as unreadable (:attr:`HeadLog.damaged`).

Standard library only: the offline verifier reads head logs with it (``verify --against``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

SIGNATURE_PREFIX: Final = "\u2014 "  # as genesis.audit.note: every signature line starts with it
TAIL_WINDOW: Final = 1 << 20
"""Bytes read from the end of the file to find the latest heads (far more than a few records)."""


@dataclass
class HeadLog:
    """The records of a head log: complete notes in file order, and what could not be read."""

    notes: list[str] = field(default_factory=list)
    damaged: int = 0
    """Records that are not a note (a torn write, or damage): they prove nothing and are skipped."""


def append_note(path: Path, note: str) -> None:
    """Append one signed note as a record, durably (flock, single write, fsync).

    Raises:
        OSError: the file cannot be created or written.
        ValueError: ``note`` is not a single note (no signature block, or an empty line inside it).
    """
    if not note.endswith("\n") or note.count("\n\n") != 1 or note.startswith("\n"):
        raise ValueError("a head log record is one signed note")
    data = (note + "\n").encode("utf-8")
    path = Path(path)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            tail = os.pread(fd, min(2, size), size - min(2, size)) if size else b"\n\n"
            if tail != b"\n\n":  # a torn record: close it so that it stands alone
                data = (b"\n" if tail.endswith(b"\n") else b"\n\n") + data
            os.write(fd, data)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse(text: str) -> HeadLog:
    """The records of a head log's content (a torn last record counts as damaged)."""
    out = HeadLog()
    records = list(_records(text))
    for record in records:
        if record is None:
            out.damaged += 1
        else:
            out.notes.append(record)
    return out


def _records(text: str) -> Iterator[str | None]:
    """Notes, or None for each part that is not one; resynchronises on signature blocks (they start with "— ")."""
    complete = text.endswith("\n\n")
    parts = text.split("\n\n")
    if complete:
        parts.pop()  # the empty rest after the last record
    pending: str | None = None
    for i, part in enumerate(parts):
        if not part:
            continue
        if part.startswith(SIGNATURE_PREFIX):
            torn = i == len(parts) - 1 and not complete
            yield None if pending is None or torn else f"{pending}\n\n{part}\n"
            pending = None
        else:
            if pending is not None:
                yield None  # a text without its signatures
            pending = part
    if pending is not None:
        yield None


def read(path: Path) -> HeadLog:
    """Every record of the head log at ``path`` (a missing file has none).

    Raises:
        OSError: the file exists but cannot be read.
        ValueError: the file is not UTF-8 text.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return HeadLog()
    try:
        return parse(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a head log (not UTF-8 text)") from None


def read_tail(path: Path, window: int = TAIL_WINDOW) -> HeadLog:
    """The records in the last ``window`` bytes of the head log (the first, possibly cut, is dropped)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - window - 2)  # two more bytes: the empty line before a record starting there
            handle.seek(start)
            raw = handle.read()
    except FileNotFoundError:
        return HeadLog()
    if start > 0:  # the window may start inside a record: skip to the first record boundary
        cut = raw.find(b"\n\n")
        while cut >= 0 and raw.startswith(SIGNATURE_PREFIX.encode(), cut + 2):
            cut = raw.find(b"\n\n", cut + 2)  # that empty line ends a note's text, not a record
        raw = raw[cut + 2 :] if cut >= 0 else b""
    log = parse(raw.decode("utf-8", "replace"))
    log.damaged = 0  # a record cut by the window is not damage
    return log
