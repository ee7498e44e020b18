"""sessions that can be ended: token generations and one row per refresh family

Revision ID: 0002_sessions
Revises: 0001
Create Date: 2026-12-01 09:00:00

Existing refresh families become sessions that end 30 days (the default GENESIS_SESSION_MAX_AGE) after
their first token; tokens issued before the upgrade carry no generation and count as generation 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_sessions"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

THIRTY_DAYS_US = 30 * 86_400 * 1_000_000


def upgrade() -> None:
    for table in ("users", "clients"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_us", sa.BigInteger(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_subject"), ["subject"], unique=False)
    # Families issued before this revision: one session each, ended if the family was revoked.
    op.execute(sa.text(
        "INSERT INTO sessions (id, subject, scope, created_at_us, expires_at_us, last_used_at_us, revoked_at_us, "
        "revoked_reason) "
        "SELECT family_id, MIN(subject), MIN(scope), MIN(created_at_us), MIN(created_at_us) + :max_age, "
        "MAX(created_at_us), MAX(revoked_at_us), CASE WHEN MAX(revoked_at_us) IS NULL THEN NULL ELSE 'revoked' END "
        "FROM refresh_tokens GROUP BY family_id"
    ).bindparams(max_age=THIRTY_DAYS_US))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_subject"))
    op.drop_table("sessions")
    for table in ("clients", "users"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("token_generation")
