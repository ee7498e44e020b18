"""Checks ``genesis serve`` makes before it prints anything: the port is free, the data directory is ours.

A busy port used to print the banner and "Application startup complete." before uvicorn's real error,
buried in a JSON line; a second server on the same SQLite data directory started silently and doubled
the per-process rate limits. Both are now one clear line and a non-zero exit, before any start-up work.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from genesis.errors import Conflict

LOCK_FILE = "serve.lock"


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on (the bind is released at once: uvicorn binds it next).

    Raises:
        Conflict: the address is in use, or cannot be bound by this user.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(f"{host}:{port} is already in use by another program; stop it or choose another "
                               "port (--port or GENESIS_PORT)") from None
            raise Conflict(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def hold_data_dir(data_dir: Path, *, host: str, port: int) -> IO[str]:
    """Take the data directory for this server until the process ends (SQLite: one server per data directory).

    Returns the open lock file: keep a reference to it for as long as the server runs.

    Raises:
        Conflict: another server holds the directory (its pid and address are in the message).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise Conflict(f"another Genesis server ({holder}) already serves the data directory {data_dir}: SQLite is "
                       "one host's database; stop it, use another GENESIS_DATA_DIR, or scale out with PostgreSQL "
                       "(GENESIS_DATABASE_URL) and several workers or hosts") from None
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {host}:{port}\n")
        handle.flush()
    return handle
