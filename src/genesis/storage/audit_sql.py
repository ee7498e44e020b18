"""The audit store over plain DBAPI: sqlite3 (WAL, synchronous=FULL) and psycopg 3.

One chain, many writers: every ``append`` takes the chain lock inside its
transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``),
reads the head, seals the batch onto it, appends its leaves to the Merkle tree
(one ``audit_tree`` row per batch) and commits - one fsync per batch.
Signed tree heads are added under the same lock (``add_head``), so the workers of a
deployment agree on one head per tree size.
Tables come from ``genesis.storage.models``; append-only triggers from the DDL
functions below (installed by the migration).


SQL here is assembled only from constant column lists and ``?`` placeholders (hence
the ``noqa: S608`` marks); every value travels as a bound parameter.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from genesis.audit.chain import ChainHasher, PendingLink, committed_event, seal
from genesis.audit.checkpoints import Checkpoint
from genesis.audit.events import EVENT_COLUMNS, GENESIS_HASH, AuditEvent, EventRow
from genesis.audit.merkle import Frontier, NodeId, root_at
from genesis.audit.store import (
    ArchiveRecord,
    ArchiveWriter,
    AuditStore,
    ChainHead,
    HeadDraft,
    Order,
    StoredHead,
)
from genesis.errors import ConfigurationError, Conflict, InvalidInput, Unavailable
from genesis.storage import audit_tree
from genesis.storage.wal import enable_wal
from genesis.timeutil import now_us

# Raise synchronous_commit to "on" when the session's setting would acknowledge a commit before its WAL
# flush ("off", "local"); leave "on", "remote_write" and "remote_apply" as they are.
DURABLE_COMMITS_SQL: Final = (
    "SELECT set_config('synchronous_commit', 'on', false) "
    "WHERE current_setting('synchronous_commit') IN ('off', 'local')"
)
CHAIN_LOCK_KEY: Final = 0x67656E6573697331  # "genesis1": the advisory lock of the one chain
_COLS: Final = ", ".join(EVENT_COLUMNS)
_INSERT: Final = f"INSERT INTO audit_events ({_COLS}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"  # noqa: S608
_CP_COLS: Final = "seq, head_hash, created_at_us, key_id, signature, reason"
_AR_COLS: Final = "before_us, first_seq, last_seq, last_hash, digest, location, created_at_us"
_HEAD_COLS: Final = "size, root, note, created_at_us, reason"
_APPEND_ONLY: Final = "audit events are append-only"
_IMMUTABLE_TABLES: Final = ("audit_checkpoints", "audit_archives")
_TREE_TABLES: Final = ("audit_tree", "audit_heads")


def sqlite_append_only_ddl() -> list[str]:
    """Triggers that make the audit tables append-only in SQLite (pruning only archived seqs)."""
    abort = "BEGIN SELECT RAISE(ABORT, '{}'); END"
    return [
        f"CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events "
        f"{abort.format(_APPEND_ONLY)}",
        "CREATE TRIGGER IF NOT EXISTS audit_events_delete_archived_only BEFORE DELETE ON audit_events "  # noqa: S608
        "WHEN OLD.seq > (SELECT COALESCE(MAX(last_seq), 0) FROM audit_archives) "
        f"{abort.format(_APPEND_ONLY)}",
        *(
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"{abort.format(f'{table} are append-only')}"
            for table in (*_IMMUTABLE_TABLES, *_TREE_TABLES)
            for op in ("UPDATE", "DELETE")
        ),
    ]


def postgresql_append_only_ddl(*, include_tree: bool = True) -> list[str]:
    """The same guarantees for PostgreSQL (row triggers plus TRUNCATE refusal).

    ``include_tree=False`` leaves out the tree tables (the first migration, which predates them).
    """
    immutable = (*_IMMUTABLE_TABLES, *(_TREE_TABLES if include_tree else ()))
    return [
        "CREATE OR REPLACE FUNCTION genesis_audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$ "  # noqa: S608
        "BEGIN IF TG_OP = 'DELETE' THEN "
        "IF OLD.seq <= (SELECT COALESCE(MAX(last_seq), 0) FROM audit_archives) THEN RETURN OLD; END IF; END IF; "
        f"RAISE EXCEPTION '{_APPEND_ONLY}' USING ERRCODE = 'integrity_constraint_violation'; END $$",
        "CREATE OR REPLACE FUNCTION genesis_audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' are append-only', "
        "ERRCODE = 'integrity_constraint_violation'; END $$",
        "CREATE OR REPLACE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION genesis_audit_events_guard()",
        *(
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION genesis_audit_immutable()"
            for table in immutable
        ),
        *(
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION genesis_audit_immutable()"
            for table in ("audit_events", *immutable)
        ),
    ]


def open_audit_store(
    database_url: str, *, hmac_key: bytes | str | None = None, timeout_seconds: float = 10.0
) -> AuditStore:
    """An audit store for a SQLAlchemy-style URL (sqlite[+driver]:/// or postgresql[+driver]://)."""
    scheme, _, rest = database_url.partition("://")
    dialect = scheme.split("+", 1)[0].lower()
    if dialect == "sqlite":
        path = unquote(urlsplit(database_url).path)
        path = path[1:] if path.startswith("/") else path
        if not path or path == ":memory:":
            raise ConfigurationError("the audit store needs a SQLite file, not an in-memory database")
        return SqliteAuditStore(Path(path), hmac_key=hmac_key, timeout_seconds=timeout_seconds)
    if dialect in ("postgresql", "postgres"):
        return PostgresAuditStore(f"postgresql://{rest}", hmac_key=hmac_key, timeout_seconds=timeout_seconds)
    raise ConfigurationError(f"unsupported audit database URL scheme {scheme!r}")


def _key(item: AuditEvent | PendingLink) -> tuple[str, int]:
    event = item.event if isinstance(item, PendingLink) else item
    return event.event_id, event.occurred_at_us


class _DbapiAuditStore:
    """Shared logic; subclasses supply connections, the chain lock and error classes."""

    integrity_errors: tuple[type[Exception], ...] = ()
    operational_errors: tuple[type[Exception], ...] = ()

    def __init__(self, *, hmac_key: bytes | str | None, timeout_seconds: float) -> None:
        self._hmac_key = hmac_key
        self._hasher = ChainHasher(hmac_key)
        self.hash_algorithm = self._hasher.algorithm
        self.timeout_seconds = timeout_seconds
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        # The frontier after this process's last committed append: reused while no other process has
        # appended since (the chain head then still has its size), read from audit_tree otherwise.
        self._frontier: Frontier | None = None
        self._frontier_lock = threading.Lock()

    # --- dialect hooks -------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A cursor inside one transaction holding the chain lock."""
        raise NotImplementedError
        yield

    # --- plumbing -------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:  # a thread still working after close() must not open (and leak) a connection
                raise Unavailable("the audit store is closed", component="audit_store")
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                if self._closed:
                    conn.close()
                    raise Unavailable("the audit store is closed", component="audit_store")
                self._conns.append(conn)
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._conns_lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            with contextlib.suppress(Exception):  # the connection is already broken
                conn.close()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except self.operational_errors as exc:
            self._drop_conn()
            raise Unavailable(f"audit store unavailable: {exc}", component="audit_store") from exc

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._guard():
            return self._run(self._conn(), sql, params)

    def _run(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Execute on ``cur`` (a connection or cursor); the fetched rows, ``[]`` for a statement without."""
        result = cur.execute(self._sql(sql), tuple(params))
        return list(result.fetchall()) if result.description is not None else []

    def _executor(self, cur: Any) -> audit_tree.Execute:
        return lambda sql, params: self._run(cur, sql, params)

    def close(self) -> None:
        with self._conns_lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()
        self._local = threading.local()

    # --- the chain --------------------------------------------------------------
    def _head_in(self, cur: Any) -> ChainHead:
        row = cur.execute(self._sql("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).fetchone()
        return ChainHead(int(row[0]), str(row[1])) if row else self._boundary_in(cur)

    def _boundary_in(self, cur: Any) -> ChainHead:
        row = cur.execute(
            self._sql("SELECT last_seq, last_hash FROM audit_archives ORDER BY last_seq DESC LIMIT 1")
        ).fetchone()
        return ChainHead(int(row[0]), str(row[1])) if row else ChainHead(0, GENESIS_HASH)

    def head(self) -> ChainHead:
        with self._guard():
            return self._head_in(self._conn())

    def boundary(self) -> ChainHead:
        with self._guard():
            return self._boundary_in(self._conn())

    def append(self, events: Sequence[AuditEvent | PendingLink]) -> list[AuditEvent]:
        """Commit ``events`` onto the chain; retried once on a fresh connection if the connection was lost.

        The retry is safe even when the first commit landed before the error reached us:
        appends are idempotent by (event_id, occurred_at_us), so the retry finds the stored
        events and returns them instead of writing them twice.

        Raises:
            Unavailable: the append failed, and so did the retry if one was worth making.
        """
        if not events:
            return []
        try:
            return self._append_idempotent(events)
        except Unavailable as exc:
            if not self._reconnect_may_help(exc.__cause__):
                raise
        return self._append_idempotent(events)  # ``_guard`` has dropped the broken connection

    def _reconnect_may_help(self, exc: BaseException | None) -> bool:
        """Whether an append that failed with ``exc`` may succeed on a fresh connection."""
        return isinstance(exc, self.operational_errors)

    def _append_idempotent(self, events: Sequence[AuditEvent | PendingLink]) -> list[AuditEvent]:
        try:
            return self._append_once(events)
        except self.integrity_errors:
            pass
        # A resubmitted event (same id and time): keep the stored one, write the rest.
        known = {(e.event_id, e.occurred_at_us): e for e in self._existing(events)}
        fresh: dict[tuple[str, int], AuditEvent | PendingLink] = {}
        for item in events:
            key = _key(item)
            if key not in known:
                fresh.setdefault(key, item)
        committed = self._append_once(list(fresh.values()))
        known.update({(e.event_id, e.occurred_at_us): e for e in committed})
        return [known[_key(item)] for item in events]

    def _append_once(self, events: Sequence[AuditEvent | PendingLink]) -> list[AuditEvent]:
        if not events:
            return []
        with self._guard(), self._write() as cur:
            head = self._head_in(cur)
            frontier = self._frontier_in(cur, head.seq)
            leaves: list[bytes] = []
            rows = seal(events, head.seq, head.hash, self._hasher, leaves)
            self._insert_rows(cur, rows)
            audit_tree.append_leaves(self._executor(cur), frontier, leaves)
        self._remember(frontier)
        return [committed_event(item, row) for item, row in zip(events, rows, strict=True)]

    def _frontier_in(self, cur: Any, size: int) -> Frontier:
        """A private copy of the tree's frontier at ``size`` (the chain's head seq), inside the locked transaction.

        A tree behind the events (events written by a release without the tree, during a rolling
        upgrade) is caught up here from the stored events, in the same transaction.

        Raises:
            Conflict: the tree is ahead of the events (events were deleted), or behind and the
                events it needs are gone.
        """
        with self._frontier_lock:
            cached = self._frontier
            if cached is not None and cached.size == size:
                return cached.copy()
        execute = self._executor(cur)
        frontier = audit_tree.latest_frontier(execute)
        if frontier.size > size:
            raise Conflict(f"the audit tree has {frontier.size} leaves but the trail ends at seq {size}: "
                           "events were deleted (run genesis audit verify)")
        if frontier.size < size:
            try:
                audit_tree.build(execute, frontier, self._rows_in(cur, frontier.size + 1, size))
            except ValueError as exc:
                raise Conflict(f"the audit tree cannot be built: {exc} (run genesis db upgrade)") from exc
        return frontier

    def _rows_in(self, cur: Any, first: int, last: int, chunk: int = 5000) -> Iterator[EventRow]:
        sql = f"SELECT {_COLS} FROM audit_events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"  # noqa: S608
        while first <= last:
            rows = self._run(cur, sql, (first, last, chunk))
            yield from rows
            if len(rows) < chunk:
                return
            first = rows[-1][0] + 1

    def _remember(self, frontier: Frontier) -> None:
        with self._frontier_lock:
            if self._frontier is None or frontier.size > self._frontier.size:
                self._frontier = frontier

    def _insert_rows(self, cur: Any, rows: list[EventRow]) -> None:
        cur.executemany(self._sql(_INSERT), rows)

    def _existing(self, events: Sequence[AuditEvent | PendingLink]) -> list[AuditEvent]:
        ids = sorted({_key(e)[0] for e in events})
        marks = ", ".join("?" * len(ids))
        rows = self._all(f"SELECT {_COLS} FROM audit_events WHERE event_id IN ({marks})", ids)  # noqa: S608
        return [AuditEvent.from_row(r) for r in rows]

    # --- checkpoints and reads --------------------------------------------------
    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._guard(), self._write() as cur:
            self._insert_checkpoint(cur, checkpoint)

    def _insert_checkpoint(self, cur: Any, cp: Checkpoint) -> None:
        cur.execute(
            self._sql(f"INSERT INTO audit_checkpoints ({_CP_COLS}) VALUES (?, ?, ?, ?, ?, ?)"),  # noqa: S608
            (cp.seq, cp.head_hash, cp.created_at_us, cp.key_id, cp.signature, cp.reason),
        )

    def checkpoints(self, *, min_seq: int | None = None, max_seq: int | None = None) -> list[Checkpoint]:
        lo = -1 if min_seq is None else min_seq
        hi = 2**62 if max_seq is None else max_seq
        sql = f"SELECT {_CP_COLS} FROM audit_checkpoints WHERE seq >= ? AND seq <= ? ORDER BY seq, id"  # noqa: S608
        return [Checkpoint(*row) for row in self._all(sql, (lo, hi))]

    def iter_rows(
        self, *, start_seq: int | None = None, end_seq: int | None = None, chunk: int = 5000
    ) -> Iterator[EventRow]:
        nxt = 0 if start_seq is None else start_seq
        hi = 2**62 if end_seq is None else end_seq
        sql = f"SELECT {_COLS} FROM audit_events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"  # noqa: S608
        while nxt <= hi:
            rows = self._all(sql, (nxt, hi, chunk))
            yield from rows
            if len(rows) < chunk:
                return
            nxt = rows[-1][0] + 1

    def iter_events(self, *, start_seq: int | None = None, end_seq: int | None = None) -> Iterator[AuditEvent]:
        for row in self.iter_rows(start_seq=start_seq, end_seq=end_seq):
            yield AuditEvent.from_row(row)

    def query(
        self,
        *,
        start_us: int | None = None,
        end_us: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        level: str | None = None,
        correlation_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        order: Order = "asc",
    ) -> tuple[list[AuditEvent], str | None]:
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000")
        where, params = ["1 = 1"], []
        for column, op, value in (
            ("occurred_at_us", ">=", start_us), ("occurred_at_us", "<", end_us), ("actor", "=", actor),
            ("action", "=", action), ("outcome", "=", outcome), ("level", "=", level),
            ("correlation_id", "=", correlation_id),
        ):  # fmt: skip
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
        desc = order == "desc"
        if cursor is not None:
            try:
                params.append(int(cursor))
            except ValueError:
                raise InvalidInput("invalid cursor") from None
            where.append("seq < ?" if desc else "seq > ?")
        sql = (
            f"SELECT {_COLS} FROM audit_events WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY seq {'DESC' if desc else 'ASC'} LIMIT ?"
        )
        rows = self._all(sql, [*params, limit + 1])
        events = [AuditEvent.from_row(r) for r in rows[:limit]]
        return events, (str(events[-1].seq) if len(rows) > limit else None)

    def get(self, event_id: str) -> AuditEvent | None:
        sql = f"SELECT {_COLS} FROM audit_events WHERE event_id = ? ORDER BY seq LIMIT 1"  # noqa: S608
        rows = self._all(sql, (event_id,))
        return AuditEvent.from_row(rows[0]) if rows else None

    def archives(self) -> list[ArchiveRecord]:
        sql = f"SELECT {_AR_COLS} FROM audit_archives ORDER BY last_seq"  # noqa: S608
        return [ArchiveRecord(*r) for r in self._all(sql)]

    # --- archiving ----------------------------------------------------------------
    def archive_cut(self, before_us: int) -> int | None:
        start = self.boundary()
        cut = self._all("SELECT MIN(seq) FROM audit_events WHERE occurred_at_us >= ?", (before_us,))[0][0]
        last_seq = int(cut) - 1 if cut is not None else self.head().seq
        return last_seq if last_seq > start.seq else None

    def archive(self, last_seq: int, before_us: int, export_path: Path, *, write: ArchiveWriter) -> ArchiveRecord:
        start = self.boundary()
        if last_seq <= start.seq:
            raise Conflict(f"seq {last_seq} is already archived (the boundary is at {start.seq})")
        found = self._all("SELECT hash FROM audit_events WHERE seq = ?", (last_seq,))
        if not found:
            raise Conflict(f"no event with seq {last_seq} to archive up to")
        last_hash = str(found[0][0])
        # Never prune what does not verify: the export is all that will remain (``write`` verifies it).
        digest = write(export_path, start, last_seq)
        record = ArchiveRecord(before_us, start.seq + 1, last_seq, last_hash, digest, str(export_path), now_us())
        with self._guard(), self._write() as cur:
            if self._boundary_in(cur) != start:
                raise Conflict("another archive ran concurrently; retry")
            if not self._run(cur, "SELECT size FROM audit_heads WHERE size = ?", (last_seq,)):
                raise Conflict(f"no signed tree head of size {last_seq} vouches for the archive boundary")
            cur.execute(
                self._sql(f"INSERT INTO audit_archives ({_AR_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"),  # noqa: S608
                (record.before_us, record.first_seq, record.last_seq, record.last_hash, record.digest,
                 record.location, record.created_at_us),
            )  # fmt: skip
            cur.execute(self._sql("DELETE FROM audit_events WHERE seq <= ?"), (last_seq,))
        return record

    # --- the Merkle tree and its heads -----------------------------------------------
    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        with self._guard():
            return audit_tree.read_nodes(self._executor(self._conn()), ids)

    def tree_root(self, size: int | None = None) -> tuple[int, bytes]:
        with self._guard():
            execute = self._executor(self._conn())
            frontier = audit_tree.latest_frontier(execute)
            if size is None or size == frontier.size:
                return frontier.size, frontier.root()
            if not 0 <= size < frontier.size:
                raise LookupError(f"the tree has {frontier.size} leaves, not {size}")
            return size, root_at(_Nodes(execute), size)

    def add_head(self, decide: Callable[[HeadDraft], StoredHead | None]) -> StoredHead | None:
        with self._guard(), self._write() as cur:
            execute = self._executor(cur)
            frontier = self._frontier_in(cur, self._head_in(cur).seq)
            latest = execute(f"SELECT {_HEAD_COLS} FROM audit_heads ORDER BY size DESC LIMIT 1", ())  # noqa: S608

            def stored(size: int) -> StoredHead | None:
                rows = execute(f"SELECT {_HEAD_COLS} FROM audit_heads WHERE size = ?", (size,))  # noqa: S608
                return _head(rows[0]) if rows else None

            head = decide(HeadDraft(frontier.size, frontier.root(), _head(latest[0]) if latest else None,
                                    _Nodes(execute), stored))
            if head is not None:
                try:
                    execute(f"INSERT INTO audit_heads ({_HEAD_COLS}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
                            (head.size, head.root, head.note, head.created_at_us, head.reason))
                except self.integrity_errors as exc:
                    raise Conflict(f"a signed tree head of size {head.size} is already stored") from exc
        self._remember(frontier)
        return head

    def latest_head(self) -> StoredHead | None:
        rows = self._all(f"SELECT {_HEAD_COLS} FROM audit_heads ORDER BY size DESC LIMIT 1")  # noqa: S608
        return _head(rows[0]) if rows else None

    def heads(
        self, *, min_size: int | None = None, max_size: int | None = None, limit: int = 1000, order: Order = "asc"
    ) -> list[StoredHead]:
        lo = 0 if min_size is None else min_size
        hi = 2**62 if max_size is None else max_size
        sql = (f"SELECT {_HEAD_COLS} FROM audit_heads WHERE size >= ? AND size <= ? "  # noqa: S608
               f"ORDER BY size {'DESC' if order == 'desc' else 'ASC'} LIMIT ?")
        return [_head(r) for r in self._all(sql, (lo, hi, limit))]


class _Nodes:
    """A NodeReader over one connection or cursor (so reads inside a transaction see its writes)."""

    __slots__ = ("_execute",)

    def __init__(self, execute: audit_tree.Execute) -> None:
        self._execute = execute

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return audit_tree.read_nodes(self._execute, ids)


def _head(row: Sequence[Any]) -> StoredHead:
    return StoredHead(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]), str(row[4]))


# 1024 x 18 = 18432 bound values, under SQLite's limit of 32766 (999 before 3.32).
_MAX_ROWS: Final = 1024 if sqlite3.sqlite_version_info >= (3, 32, 0) else 32


@functools.lru_cache(maxsize=16)
def _multi_insert(rows: int) -> str:
    one = f"({', '.join('?' * len(EVENT_COLUMNS))})"
    return f"INSERT INTO audit_events ({_COLS}) VALUES {', '.join([one] * rows)}"  # noqa: S608


class SqliteAuditStore(_DbapiAuditStore):
    """SQLite in WAL mode with ``synchronous=FULL``: a commit is on disk before it returns."""

    integrity_errors = (sqlite3.IntegrityError,)
    operational_errors = (sqlite3.OperationalError,)

    def __init__(self, path: Path, *, hmac_key: bytes | str | None = None, timeout_seconds: float = 10.0) -> None:
        super().__init__(hmac_key=hmac_key, timeout_seconds=timeout_seconds)
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout_seconds, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_seconds * 1000)}")
        enable_wal(conn.cursor(), timeout=self.timeout_seconds)
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _reconnect_may_help(self, exc: BaseException | None) -> bool:
        # "database is locked": the busy timeout has already waited for the lock; another wait would only double it.
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        return super()._reconnect_may_help(exc) and code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

    def _insert_rows(self, cur: Any, rows: list[EventRow]) -> None:
        # Multi-row VALUES in power-of-two chunks: one sqlite3 step (one GIL release)
        # per chunk instead of per row, and at most 10 distinct cached statements.
        start = 0
        while start < len(rows):
            size = min(_MAX_ROWS, 1 << ((len(rows) - start).bit_length() - 1))
            chunk = rows[start : start + size]
            cur.execute(_multi_insert(size), [value for row in chunk for value in row])
            start += size

    @contextmanager
    def _write(self) -> Iterator[Any]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")  # fsyncs the WAL (synchronous=FULL) before returning
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise


class PostgresAuditStore(_DbapiAuditStore):
    """PostgreSQL via psycopg 3; the chain lock is a transaction-scoped advisory lock."""

    def __init__(self, conninfo: str, *, hmac_key: bytes | str | None = None, timeout_seconds: float = 10.0) -> None:
        import psycopg

        super().__init__(hmac_key=hmac_key, timeout_seconds=timeout_seconds)
        self.conninfo = conninfo
        self._psycopg = psycopg
        self.integrity_errors = (psycopg.IntegrityError,)
        self.operational_errors = (psycopg.OperationalError,)

    def _connect(self) -> Any:
        conn = self._psycopg.connect(self.conninfo, autocommit=True, connect_timeout=max(1, int(self.timeout_seconds)))
        try:
            # An acknowledged event must survive a power cut: a server, role or URL default of
            # synchronous_commit=off (or local) would acknowledge commits before the WAL flush.
            # Stronger settings (remote_write, remote_apply) are kept.
            conn.execute(DURABLE_COMMITS_SQL)
        except BaseException:
            conn.close()
            raise
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _reconnect_may_help(self, exc: BaseException | None) -> bool:
        # A lock_timeout or statement_timeout (set by an operator) has already waited; another wait would double it.
        waited = (self._psycopg.errors.LockNotAvailable, self._psycopg.errors.QueryCanceled)
        return super()._reconnect_may_help(exc) and not isinstance(exc, waited)

    def _insert_rows(self, cur: Any, rows: list[EventRow]) -> None:
        with cur.copy(f"COPY audit_events ({_COLS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def _write(self) -> Iterator[Any]:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = on")
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK_KEY,))
            yield cur
