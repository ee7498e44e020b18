"""The one relational schema Genesis keeps, for SQLite and PostgreSQL alike.

Times that take part in ordering, range queries or the audit chain are stored as
integer microseconds since the Unix epoch (UTC): exact, portable across both
databases, and cheap to index. Other bookkeeping times use timezone-aware
``DateTime``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(32), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # Bumped by a password change, a disable, a role change or "end sessions": every token carries the
    # generation it was issued under and stops working once it is no longer the current one.
    Column("token_generation", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

clients = Table(
    "clients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("secret_hash", String(255), nullable=False),
    Column("role", String(32), nullable=False),
    Column("description", String(255), nullable=False, default=""),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("token_generation", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per refresh token ever issued. A family is the chain of tokens that
# descend from one login; reuse of a rotated token revokes the whole family.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False, index=True),
    Column("subject", String(128), nullable=False),
    Column("scope", String(255), nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("rotated_at_us", BigInteger, nullable=True),
    Column("revoked_at_us", BigInteger, nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
)

# One row per session: a refresh family, from the login that started it. ``expires_at_us`` is absolute
# (login + GENESIS_SESSION_MAX_AGE): rotation never extends it. Access tokens carry the family id, so
# revoking a session refuses them at once.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subject", String(128), nullable=False, index=True),
    Column("scope", String(255), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("last_used_at_us", BigInteger, nullable=False),
    Column("revoked_at_us", BigInteger, nullable=True),
    Column("revoked_reason", String(32), nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
)

# Denylist of access-token ids revoked before they expire (RFC 7009).
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at_us", BigInteger, nullable=False, index=True),
    Column("revoked_at_us", BigInteger, nullable=False),
)

prices = Table(
    "prices",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("ts_us", BigInteger, primary_key=True),
    Column("open", Float, nullable=True),
    Column("high", Float, nullable=True),
    Column("low", Float, nullable=True),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=True),
)

backtests = Table(
    "backtests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(128), nullable=False, index=True),
    Column("strategy_name", String(64), nullable=False),
    Column("params", Text, nullable=False),
    Column("symbol", String(32), nullable=True),
    Column("n_prices", Integer, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("score", Float, nullable=True),
    Column("equity", Text, nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_backtests_strategy_created", "strategy_name", "created_at_us"),
)

# The audit trail. Append-only: the migration installs triggers (SQLite) or
# grants (PostgreSQL) so that the application cannot UPDATE or DELETE rows,
# except DELETE of ranges already exported by ``genesis audit archive``.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("occurred_at_us", BigInteger, nullable=False),
    Column("level", String(16), nullable=False),
    Column("action", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("source_ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("method", String(16), nullable=True),
    Column("path", String(2048), nullable=True),
    Column("status", Integer, nullable=True),
    Column("correlation_id", String(128), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("message", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("event_id", "occurred_at_us", name="uq_audit_events_event_id"),
    Index("ix_audit_events_time", "occurred_at_us"),
    Index("ix_audit_events_actor_time", "actor", "occurred_at_us"),
    Index("ix_audit_events_action_time", "action", "occurred_at_us"),
    Index("ix_audit_events_correlation", "correlation_id"),
)

# Signed statements "the chain had head HASH at sequence SEQ at time T".
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("reason", String(32), nullable=False),
    Index("ix_audit_checkpoints_seq", "seq"),
)

# Each archive run: the pruned range and the digest of its export, so the
# chain verifies from the archive boundary onwards.
audit_archives = Table(
    "audit_archives",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("before_us", BigInteger, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("location", String(1024), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

# The Merkle tree over the audit events (docs/audit-format.md section 8.6), append-only like them:
# one row per run of at most 256 leaves of a committed batch, holding the perfect subtree hashes the
# run completed (32 bytes each, in the order the appends reported them) and the frontier after it.
# Node (level, index) is in the row whose leaves include its completing leaf, at position
# emission_index - first_node. Rows of runs instead of one per node: an append writes ~64 bytes per
# event and a few rows per commit. Archiving deletes events, never tree rows: proofs keep working.
audit_tree = Table(
    "audit_tree",
    metadata,
    Column("first_leaf", BigInteger, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("first_node", BigInteger, nullable=False),
    Column("nodes", LargeBinary, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)

# Signed tree heads (C2SP checkpoints) of the whole deployment: at most one per tree size, so two
# workers can never store two different heads for one size.
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("reason", String(32), nullable=False),
)


# Webhooks (docs/push.md): endpoints, the transactional outbox and the attempts of each delivery.
# Deliveries are written in the transaction of what they announce (prices, anomalies, backtests);
# for the audit topics the audit trail is the outbox, read through each endpoint's ``audit_cursor``.
_BIGID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("scopes", String(512), nullable=False),  # the registering token's scopes: what the endpoint may see
    Column("url", String(2048), nullable=False),
    Column("description", String(255), nullable=False),
    Column("topics", Text, nullable=False),  # JSON list of topics or "<family>.*"
    Column("secret", String(128), nullable=False),
    Column("previous_secret", String(128), nullable=True),  # still signed with during a rotation
    Column("previous_secret_until_us", BigInteger, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(64), nullable=True),
    Column("audit_cursor", BigInteger, nullable=False),  # the last audit seq considered for this endpoint
    Column("paused_until_us", BigInteger, nullable=True),  # the oldest pending delivery's next attempt
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until_us", BigInteger, nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", _BIGID, primary_key=True, autoincrement=True),  # delivery order within an endpoint
    Column("msg_id", String(40), nullable=False, unique=True),  # webhook-id: the same on every attempt
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("next_attempt_at_us", BigInteger, nullable=False),
    Column("first_attempt_at_us", BigInteger, nullable=True),
    Column("last_attempt_at_us", BigInteger, nullable=True),
    Column("delivered_at_us", BigInteger, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(32), nullable=True),
    Index("ix_webhook_deliveries_endpoint_status", "endpoint_id", "status", "id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", _BIGID, primary_key=True, autoincrement=True),
    Column("delivery_id", _BIGID, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("attempted_at_us", BigInteger, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("status", Integer, nullable=True),
    Column("duration_ms", Float, nullable=False),
    Column("error", String(16), nullable=True),
    Column("detail", String(256), nullable=False),
    Column("excerpt", String(1024), nullable=False),
)
