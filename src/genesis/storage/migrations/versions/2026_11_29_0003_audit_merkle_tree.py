"""audit merkle tree and signed tree heads

Creates ``audit_tree`` (the Merkle tree over the audit events, one row per batch) and
``audit_heads`` (signed tree heads, one per size), both append-only like the other audit tables,
and builds the tree once for the events already stored. Events archived before this migration
are read back from their export files (``audit_archives.location``), checked against the recorded
digest; the migration stops with a message naming the file when one is missing.

Revision ID: 0003_audit_tree
Revises: 0002_sessions
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

from genesis.audit.events import EVENT_COLUMNS, EventRow
from genesis.audit.merkle import Frontier
from genesis.storage import audit_tree
from genesis.storage.audit_sql import CHAIN_LOCK_KEY, postgresql_append_only_ddl, sqlite_append_only_ddl

revision: str = "0003_audit_tree"
down_revision: str | None = "0002_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLS = ", ".join(EVENT_COLUMNS)


def upgrade() -> None:
    bind = op.get_bind()
    is_pg = bind.dialect.name == "postgresql"
    op.create_table(
        "audit_tree",
        sa.Column("first_leaf", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("first_node", sa.BigInteger(), nullable=False),
        sa.Column("nodes", sa.LargeBinary(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("first_leaf", name=op.f("pk_audit_tree")),
    )
    op.create_table(
        "audit_heads",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_heads")),
    )
    if is_pg:
        # Writers of the previous release keep appending events meanwhile; the new release's store
        # catches the tree up under this same lock, so the two never write the same tree rows.
        bind.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK_KEY,))
        for statement in postgresql_append_only_ddl():
            op.execute(statement)
    else:
        for statement in sqlite_append_only_ddl():
            op.execute(statement)
    _build_tree(bind)


def downgrade() -> None:
    op.drop_table("audit_heads")
    op.drop_table("audit_tree")


def _build_tree(bind: sa.engine.Connection) -> None:
    def execute(sql: str, params: Sequence[Any]) -> list[Any]:
        if bind.dialect.name == "postgresql":
            sql = sql.replace("?", "%s")
        result = bind.exec_driver_sql(sql, tuple(params))
        return list(result.fetchall()) if result.returns_rows else []

    head = execute("SELECT MAX(seq) FROM audit_events", ())[0][0]
    boundary = execute("SELECT MAX(last_seq) FROM audit_archives", ())[0][0]
    last = max(int(head or 0), int(boundary or 0))
    if last == 0:
        return
    frontier = audit_tree.build(execute, Frontier(), _archived_rows(execute))
    audit_tree.build(execute, frontier, _stored_rows(execute, frontier.size + 1, last))


def _stored_rows(execute: audit_tree.Execute, first: int, last: int, chunk: int = 5000) -> Iterator[EventRow]:
    sql = f"SELECT {_COLS} FROM audit_events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"  # noqa: S608
    while first <= last:
        rows = execute(sql, (first, last, chunk))
        yield from (tuple(r) for r in rows)
        if len(rows) < chunk:
            return
        first = rows[-1][0] + 1


def _archived_rows(execute: audit_tree.Execute) -> Iterator[EventRow]:
    """The events of every archive run, in order, read back from their export files."""
    from genesis.audit.export import ExportReader, file_digest

    archives = execute("SELECT first_seq, last_seq, digest, location FROM audit_archives ORDER BY last_seq", ())
    for first_seq, last_seq, digest, location in archives:
        path = Path(str(location))
        if not path.is_file() or file_digest(path) != digest:
            raise RuntimeError(
                f"the audit archive of seq {first_seq}..{last_seq} is not at {path} (or its SHA-256 is not the "
                f"recorded {digest}): the Merkle tree covers archived events too, so put the file back there "
                "and run `genesis db upgrade` again"
            )
        with open(path, "rb") as handle:
            reader = ExportReader.open(handle)
            for row in reader.rows():
                if int(first_seq) <= row[0] <= int(last_seq):
                    yield tuple(row)
