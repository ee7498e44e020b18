"""The least-privilege PostgreSQL role the service connects as: the audit trail is insert-only for it.

The owner role runs migrations, partition maintenance and archiving; the service
connects as an application role that may read and append to the audit trail but
never UPDATE, DELETE or TRUNCATE it, so tampering is refused by grants, not only
by triggers an owner could drop. ``grant_app_role`` sets those privileges in the
current schema, idempotently (it revokes everything first, then grants).

Privileges on the partitioned ``audit_events`` apply to every access through it:
its monthly partitions need no grants of their own (PostgreSQL checks only the
table named in the statement). They get SELECT, now and through default
privileges for the ones the owner creates later, so reading a partition directly
matches reading the parent; nothing else.

Every identifier is quoted by ``psycopg.sql.Identifier``; the role name is looked
up in ``pg_roles`` through a bound parameter before it is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from psycopg import sql
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from genesis.errors import ConfigurationError, Conflict, InvalidInput, NotFound, Unavailable
from genesis.storage.database import backend_of, sync_url
from genesis.storage.models import metadata

# The audit writer appends events, checkpoints, the Merkle tree's rows and signed tree heads, and reads them
# back (chain head, verify, queries, proofs).
APPEND_ONLY_TABLES: Final = ("audit_events", "audit_checkpoints", "audit_tree", "audit_heads")
# Read, never written by the service: archive records are written by `genesis audit archive` (owner);
# the migration version is read by the upgrade check every `genesis serve` runs at start.
READ_ONLY_TABLES: Final = ("audit_archives", "alembic_version")
# Every other table of the schema: the service's ordinary data.
APPLICATION_TABLES: Final = tuple(
    sorted(name for name in metadata.tables if name not in APPEND_ONLY_TABLES + READ_ONLY_TABLES)
)
REFUSED_ON_AUDIT: Final = ("UPDATE", "DELETE", "TRUNCATE")

_TABLE_PRIVILEGES: Final = {
    **dict.fromkeys(APPEND_ONLY_TABLES, ("SELECT", "INSERT")),
    **dict.fromkeys(READ_ONLY_TABLES, ("SELECT",)),
    **dict.fromkeys(APPLICATION_TABLES, ("SELECT", "INSERT", "UPDATE", "DELETE")),
}
_MAX_IDENTIFIER_BYTES: Final = 63  # PostgreSQL's NAMEDATALEN - 1


@dataclass(frozen=True)
class Grant:
    """Privileges one object ends up with for the role (after everything else was revoked)."""

    kind: str
    name: str
    privileges: tuple[str, ...]
    refused: tuple[str, ...] = ()

    def describe(self) -> str:
        granted = ", ".join(self.privileges) or "none"
        refused = f" (revoked: {', '.join(self.refused)})" if self.refused else ""
        return f"{self.kind} {self.name}: {granted}{refused}"


def validate_role_name(role: str) -> str:
    """The role name, if PostgreSQL could hold it (the role's existence is checked against the server).

    Raises:
        InvalidInput: empty, longer than 63 bytes, with control characters, or a reserved ``pg_`` name.
    """
    if not role or len(role.encode()) > _MAX_IDENTIFIER_BYTES:
        raise InvalidInput(f"a role name has 1 to {_MAX_IDENTIFIER_BYTES} bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in role):
        raise InvalidInput("a role name cannot contain control characters")
    if role.lower().startswith("pg_") or role.lower() == "public":
        raise InvalidInput(f"{role!r} is reserved by PostgreSQL")
    return role


def grant_app_role(database_url: str, role: str) -> list[Grant]:
    """Give ``role`` what the service needs in the current schema and no more; returns what it holds now.

    Run it as the owner of the tables (the role that ran ``genesis db upgrade``), after every upgrade.

    Args:
        database_url: the owner's URL (``GENESIS_DATABASE_URL``); PostgreSQL only.
        role: an existing role, the one the service will connect as.

    Raises:
        ConfigurationError: not PostgreSQL, or the schema is not migrated.
        InvalidInput: an impossible role name.
        NotFound: no such role.
        Conflict: the connected role cannot grant, or ``role`` would still be able to rewrite the trail
            (a superuser, the owner or one of its members, or privileges held through PUBLIC).
        Unavailable: the database cannot be reached.
    """
    if backend_of(database_url) != "postgresql":
        raise ConfigurationError(
            "grant-app-role needs PostgreSQL: SQLite has no roles (GENESIS_DATABASE_URL is a SQLite URL)"
        )
    validate_role_name(role)
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            return _grant(conn, role)
    except OperationalError as exc:
        raise Unavailable(f"cannot reach the database: {type(exc.orig).__name__}", component="database") from exc
    except DBAPIError as exc:
        raise Conflict(f"the database refused a grant: {str(exc.orig).strip().splitlines()[0]}") from exc
    finally:
        engine.dispose()


def _grant(conn: Connection, role: str) -> list[Grant]:
    schema = conn.execute(text("SELECT current_schema()")).scalar()
    if schema is None:
        raise ConfigurationError(
            "no current schema: the search_path names no schema that exists and that this role may use "
            "(run this as the owner of the tables)"
        )
    owner = _check_roles(conn, role, str(schema))
    tables = _existing_tables(conn)
    missing = sorted(set(_TABLE_PRIVILEGES) - set(tables))
    if missing:
        raise ConfigurationError(f"tables missing in schema {schema}: {', '.join(missing)}; run `genesis db upgrade`")
    who = sql.Identifier(role)
    done = [Grant("schema", str(schema), ("USAGE",))]
    _run(conn, sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(str(schema)), who))
    for table, privileges in _TABLE_PRIVILEGES.items():
        name = sql.Identifier(table)
        refused = REFUSED_ON_AUDIT if table in APPEND_ONLY_TABLES + READ_ONLY_TABLES else ()
        if refused:  # spelled out, although REVOKE ALL below takes them too
            _run(conn, sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON TABLE {} FROM {}").format(name, who))
        _run(conn, sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(name, who))
        _run(conn, sql.SQL("GRANT {} ON TABLE {} TO {}").format(_privileges(privileges), name, who))
        done.append(Grant("table", table, privileges, refused))
    for sequence, table in _owned_sequences(conn):
        granted = ("USAGE", "SELECT") if "INSERT" in _TABLE_PRIVILEGES.get(table, ()) else ()
        _run(conn, sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(sql.Identifier(sequence), who))
        if granted:
            _run(conn, sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(sql.Identifier(sequence), who))
        done.append(Grant("sequence", sequence, granted))
    partitions = _partitions(conn)
    for partition in partitions:
        _run(conn, sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(sql.Identifier(partition), who))
        _run(conn, sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(sql.Identifier(partition), who))
    done.append(Grant("partitions of audit_events", f"({len(partitions)})", ("SELECT",), REFUSED_ON_AUDIT))
    # Partitions the owner adds later: SELECT only, like the ones above. (Writes go through the parent.)
    defaults = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} ").format(
        sql.Identifier(owner), sql.Identifier(str(schema))
    )
    _run(conn, defaults + sql.SQL("REVOKE ALL ON TABLES FROM {}").format(who))
    _run(conn, defaults + sql.SQL("GRANT SELECT ON TABLES TO {}").format(who))
    done.append(Grant("default privileges", f"of {owner} in {schema} on new tables", ("SELECT",)))
    _check_append_only(conn, role, owner, [*APPEND_ONLY_TABLES, *READ_ONLY_TABLES, *partitions])
    return done


def _check_roles(conn: Connection, role: str, schema: str) -> str:
    """The owner of ``audit_events``; refuses a role that grants cannot restrict or a connection that cannot grant."""
    superuser = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if superuser is None:
        raise NotFound(f"role {role!r} does not exist; create it first (CREATE ROLE ... LOGIN PASSWORD ...)")
    if superuser[0]:
        raise Conflict(f"role {role!r} is a superuser: no grant can restrict it")
    owner = conn.execute(text(
        "SELECT pg_get_userbyid(c.relowner) FROM pg_class c "
        "WHERE c.relname = 'audit_events' AND c.relnamespace = quote_ident(current_schema())::regnamespace"
    )).scalar()
    if owner is None:
        raise ConfigurationError(f"no audit_events table in schema {schema}; run `genesis db upgrade` first")
    if conn.execute(text("SELECT pg_has_role(:r, :o, 'USAGE')"), {"r": role, "o": owner}).scalar():
        raise Conflict(f"role {role!r} is (or inherits) the owner {owner!r} of the tables; use a separate role")
    if not conn.execute(text("SELECT pg_has_role(current_user, :o, 'MEMBER')"), {"o": owner}).scalar():
        raise Conflict(f"run this as the owner of the tables ({owner!r}), not as {_current_user(conn)!r}")
    return str(owner)


def _check_append_only(conn: Connection, role: str, owner: str, tables: Sequence[str]) -> None:
    """Refuse (and roll back) if ``role`` can still rewrite the trail: through PUBLIC, a membership or defaults."""
    params = {"tables": list(tables), "privileges": list(REFUSED_ON_AUDIT), "r": role, "o": owner}
    held = [f"{privilege} on {name}" for name, privilege in conn.execute(text(
        "SELECT c.relname, p.privilege FROM pg_class c, unnest(CAST(:privileges AS text[])) AS p(privilege) "
        "WHERE c.relnamespace = quote_ident(current_schema())::regnamespace "
        "AND c.relname = ANY(CAST(:tables AS text[])) "
        "AND has_table_privilege(:r, c.oid, p.privilege) ORDER BY c.relname, p.privilege"
    ), params)]
    # Default privileges set for every schema (ours were reset above) would make new partitions writable.
    held += [f"{privilege} on tables {owner} creates (default privileges)" for (privilege,) in conn.execute(text(
        "SELECT DISTINCT a.privilege_type FROM pg_default_acl d, aclexplode(d.defaclacl) a "
        "WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = :o) "
        "AND d.defaclobjtype = 'r' AND d.defaclnamespace = 0 "
        "AND a.privilege_type = ANY(CAST(:privileges AS text[])) "
        "AND (a.grantee = 0 OR pg_has_role(:r, a.grantee, 'USAGE')) ORDER BY 1"
    ), params)]
    if held:
        raise Conflict(
            f"role {role!r} would still hold {', '.join(held)} (through PUBLIC, a role it belongs to or "
            "default privileges); revoke that first"
        )


def _existing_tables(conn: Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute(text(
        "SELECT relname FROM pg_class WHERE relnamespace = quote_ident(current_schema())::regnamespace "
        "AND relkind IN ('r', 'p')"
    ))]


def _owned_sequences(conn: Connection) -> list[tuple[str, str]]:
    """(sequence, table) for each serial or identity column's sequence in the current schema."""
    return [(str(s), str(t)) for s, t in conn.execute(text(
        "SELECT s.relname, t.relname FROM pg_class s "
        "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.deptype IN ('a', 'i') "
        "JOIN pg_class t ON d.refclassid = 'pg_class'::regclass AND t.oid = d.refobjid "
        "WHERE s.relkind = 'S' AND s.relnamespace = quote_ident(current_schema())::regnamespace "
        "ORDER BY s.relname"
    ))]


def _partitions(conn: Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'audit_events' "
        "AND p.relnamespace = quote_ident(current_schema())::regnamespace ORDER BY c.relname"
    ))]


def _current_user(conn: Connection) -> str:
    return str(conn.execute(text("SELECT current_user")).scalar())


def _privileges(names: Sequence[str]) -> sql.Composable:
    # Keywords from the constant table above, never from input.
    return sql.SQL(", ").join(sql.SQL(name) for name in names)


def _run(conn: Connection, statement: sql.Composable) -> None:
    """Execute a composed statement on the driver connection, inside the SQLAlchemy transaction."""
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(statement)
