"""The least-privilege PostgreSQL role: the service runs as it, and the audit trail is insert-only for it.

Each test gets two fresh LOGIN roles (trust auth lets the tests connect as them): an owner that owns a
fresh schema and runs the migrations, and the application role that ``genesis db grant-app-role`` equips.
Schema and roles are dropped afterwards.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from genesis.api.app import create_app
from genesis.audit import new_event
from genesis.audit.checkpoints import CheckpointSigner, load_or_create_signing_key
from genesis.audit.heads import HeadMaker, log_signer
from genesis.audit.trail import TrustedKeys
from genesis.cli.main import app
from genesis.config import Settings, get_settings
from genesis.errors import ConfigurationError
from genesis.services.audit_trail import verify
from genesis.storage import partitions
from genesis.storage.audit_sql import open_audit_store
from genesis.storage.database import sync_url
from genesis.storage.grants import APPEND_ONLY_TABLES, APPLICATION_TABLES, READ_ONLY_TABLES
from genesis.storage.migrate import upgrade_database
from genesis.storage.models import metadata
from genesis.storage.partitions import add_months, ensure_audit_partitions, month_start, partition_name
from genesis.timeutil import to_us
from tests.conftest import ADMIN_PASSWORD, PG_SKIP, PG_URL, bearer, token_for

runner = CliRunner()
Denied = psycopg.errors.InsufficientPrivilege
CliAs = Callable[..., Result]


@dataclass(frozen=True)
class Deployment:
    schema: str
    owner: str
    role: str
    owner_url: str
    app_url: str


def _url(role: str, schema: str) -> str:
    url = make_url(PG_URL).set(drivername="postgresql", username=role, password=None,
                               query={"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def _dsn(url: str) -> str:
    return sync_url(url).replace("postgresql+psycopg://", "postgresql://")


def _superuser() -> psycopg.Connection:
    return psycopg.connect(_dsn(PG_URL), autocommit=True)


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    """An owner role with a migrated schema of its own, and an application role with no privileges yet."""
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    tag = uuid.uuid4().hex[:10]
    schema, owner, role = f"approle_{tag}", f"genesis_owner_{tag}", f"genesis_app_{tag}"
    with _superuser() as su:
        su.execute(f'CREATE ROLE "{owner}" LOGIN')
        su.execute(f'CREATE ROLE "{role}" LOGIN')
        su.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{owner}"')
    found = Deployment(schema, owner, role, _url(owner, schema), _url(role, schema))
    try:
        upgrade_database(found.owner_url)
        yield found
    finally:
        with _superuser() as su:
            su.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN (%s, %s)",
                       (owner, role))
            su.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            for name in (role, owner):
                su.execute(f'DROP OWNED BY "{name}"')  # grants and default privileges in this database
                su.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def cli_as(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliAs]:
    """``cli_as(url, *args)`` runs ``genesis *args`` with GENESIS_DATABASE_URL=url."""
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("GENESIS_LOG_CONSOLE", "false")
    monkeypatch.delenv("GENESIS_REDIS_URL", raising=False)

    def invoke(url: str, *args: str) -> Result:
        monkeypatch.setenv("GENESIS_DATABASE_URL", url)
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


@pytest.fixture
def granted(deployment: Deployment, cli_as: CliAs) -> Deployment:
    result = cli_as(deployment.owner_url, "db", "grant-app-role", deployment.role)
    assert result.exit_code == 0, result.output
    return deployment


@pytest.fixture
def partition_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[logging.LogRecord]]:
    """Records of the partition keeper's logger, with its say-it-once memory reset."""
    monkeypatch.setattr(partitions, "_reported", set())
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("genesis.storage.partitions")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _ensure(url: str, now: datetime) -> list[str]:
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            return ensure_audit_partitions(conn, now=now)
    finally:
        engine.dispose()


def test_every_table_is_classified_and_every_audit_table_is_write_protected() -> None:
    classified = set(APPEND_ONLY_TABLES) | set(READ_ONLY_TABLES) | set(APPLICATION_TABLES)
    assert set(metadata.tables) <= classified
    assert {t for t in metadata.tables if t.startswith("audit_")} <= set(APPEND_ONLY_TABLES) | set(READ_ONLY_TABLES)
    assert not any(t.startswith("audit_") for t in APPLICATION_TABLES)


def test_grant_app_role_refuses_sqlite_clearly(cli_as: CliAs, tmp_path: Path) -> None:
    result = cli_as(f"sqlite:///{tmp_path / 'g.db'}", "db", "grant-app-role", "genesis_app")
    assert result.exit_code != 0
    assert "needs PostgreSQL" in result.output and "SQLite has no roles" in result.output
    partitions_cmd = cli_as(f"sqlite:///{tmp_path / 'g.db'}", "db", "partitions")
    assert partitions_cmd.exit_code != 0 and "PostgreSQL only" in partitions_cmd.output


@pytest.mark.postgres
def test_grant_is_idempotent_and_prints_what_it_granted(deployment: Deployment, cli_as: CliAs) -> None:
    first = cli_as(deployment.owner_url, "db", "grant-app-role", deployment.role)
    assert first.exit_code == 0, first.output
    assert "table audit_events: SELECT, INSERT (revoked: UPDATE, DELETE, TRUNCATE)" in first.output
    assert "table audit_archives: SELECT (revoked: UPDATE, DELETE, TRUNCATE)" in first.output
    assert "table users: SELECT, INSERT, UPDATE, DELETE" in first.output
    assert f"schema {deployment.schema}: USAGE" in first.output
    assert "sequence audit_checkpoints_id_seq: USAGE, SELECT" in first.output
    assert "sequence audit_archives_id_seq: none" in first.output
    second = cli_as(deployment.owner_url, "db", "grant-app-role", deployment.role)
    assert second.exit_code == 0 and second.output == first.output
    to_itself = cli_as(deployment.app_url, "db", "grant-app-role", deployment.role)
    assert to_itself.exit_code == 4
    assert f"run this as the owner of the tables ('{deployment.owner}')" in to_itself.output
    with _superuser() as su:
        acl = su.execute(
            "SELECT c.relname, p.privilege_type FROM pg_class c, aclexplode(c.relacl) p "
            "WHERE c.relnamespace = %s::regnamespace AND p.grantee = %s::regrole ORDER BY 1, 2",
            (deployment.schema, deployment.role),
        ).fetchall()
    held: dict[str, set[str]] = {}
    for table, privilege in acl:
        held.setdefault(table, set()).add(privilege)
    assert held["audit_events"] == {"SELECT", "INSERT"}
    assert held["audit_checkpoints"] == held["audit_tree"] == held["audit_heads"] == {"SELECT", "INSERT"}
    assert held["audit_archives"] == {"SELECT"}
    assert held["prices"] == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert held[partition_name(datetime.now(UTC))] == {"SELECT"}


@pytest.mark.postgres
def test_grant_refuses_unknown_roles_bad_names_and_the_owner_itself(deployment: Deployment, cli_as: CliAs) -> None:
    missing = cli_as(deployment.owner_url, "db", "grant-app-role", "no_such_role_x1")
    assert missing.exit_code == 3 and "does not exist" in missing.output
    weird = cli_as(deployment.owner_url, "db", "grant-app-role", 'x"; DROP TABLE users; --')
    assert weird.exit_code == 3  # looked up as a name through a bound parameter, never spliced into SQL
    reserved = cli_as(deployment.owner_url, "db", "grant-app-role", "pg_monitor")
    assert reserved.exit_code == 2
    owner = cli_as(deployment.owner_url, "db", "grant-app-role", deployment.owner)
    assert owner.exit_code == 4 and "owner" in owner.output
    as_app = cli_as(deployment.app_url, "db", "grant-app-role", deployment.role)
    assert as_app.exit_code != 0 and "owner" in as_app.output  # it cannot even see the schema yet
    with _superuser() as su:
        assert su.execute(f'SELECT count(*) FROM "{deployment.schema}".users').fetchone() is not None


@pytest.mark.postgres
def test_grant_refuses_when_the_role_could_still_write_the_trail_through_public(
    deployment: Deployment, cli_as: CliAs
) -> None:
    with psycopg.connect(_dsn(deployment.owner_url), autocommit=True) as owner:
        owner.execute("GRANT UPDATE ON audit_checkpoints TO PUBLIC")
    result = cli_as(deployment.owner_url, "db", "grant-app-role", deployment.role)
    assert result.exit_code == 4
    assert "would still hold UPDATE on audit_checkpoints (through PUBLIC" in result.output
    with _superuser() as su:  # all or nothing: the refused run granted nothing
        assert su.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')",
                          (deployment.role, deployment.schema)).fetchone() == (False,)


@pytest.mark.postgres
def test_the_app_role_appends_to_the_trail_but_grants_refuse_rewriting_it(granted: Deployment, tmp_path: Path) -> None:
    signer = CheckpointSigner.from_data_dir(tmp_path / "keys")
    store = open_audit_store(granted.app_url)
    try:
        committed = store.append([new_event("role.test", actor="t", correlation_id=f"c{i}") for i in range(5)])
        store.add_checkpoint(signer.sign(committed[-2].seq, committed[-2].hash, reason="test"))  # an old-style one
        heads = HeadMaker(store, log_signer(load_or_create_signing_key(tmp_path / "keys")),
                          head_log=tmp_path / "heads.log")
        assert heads.make("on-demand") is not None  # the role may append the tree's heads
        report = verify(store, hmac_key=None, keys=TrustedKeys(heads.verifier))
    finally:
        store.close()
    assert report.ok and report.events_checked == 5 and report.checkpoints_matched == 2
    # The owner drops the append-only trigger: what still stops the service's role is the grants.
    with psycopg.connect(_dsn(granted.owner_url), autocommit=True) as owner:
        owner.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        owner.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
    current = partition_name(datetime.now(UTC))
    refused = [
        "UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events",
        f"UPDATE {current} SET actor = 'x'", f"DELETE FROM {current}", f"TRUNCATE {current}",
        "UPDATE audit_checkpoints SET seq = 0", "DELETE FROM audit_checkpoints", "TRUNCATE audit_checkpoints",
        "INSERT INTO audit_archives (before_us, first_seq, last_seq, last_hash, digest, location, created_at_us) "
        "VALUES (1, 1, 5, 'h', 'd', 'l', 1)",
        "DELETE FROM audit_archives", "DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints",
        "UPDATE audit_tree SET tree_size = 0", "DELETE FROM audit_tree", "TRUNCATE audit_tree",
        "UPDATE audit_heads SET size = 0", "DELETE FROM audit_heads", "TRUNCATE audit_heads",
        "ALTER TABLE audit_events DISABLE TRIGGER ALL", "DROP TABLE audit_events",
        "CREATE TABLE audit_events_2199_01 PARTITION OF audit_events FOR VALUES FROM (0) TO (1)",
    ]
    with psycopg.connect(_dsn(granted.app_url)) as conn:
        for statement in refused:
            with pytest.raises(Denied):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (5,)


@pytest.mark.postgres
def test_the_service_runs_as_the_app_role(granted: Deployment, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=granted.app_url,  # type: ignore[call-arg]
                        admin_username="admin", admin_password=ADMIN_PASSWORD, log_console=False,
                        key_prefix=f"genesis-test-{uuid.uuid4().hex[:8]}")
    # create_app migrates on start: at head, that is a read of alembic_version, which the role may do.
    with TestClient(create_app(settings), client=("203.0.113.7", 50000)) as client:
        assert client.get("/ready").status_code == 200, client.get("/ready").text
        tokens = token_for(client)
        admin = bearer(tokens["access_token"])
        assert client.post("/users", json={"username": "tess", "password": "tess-password", "role": "trader"},
                           headers=admin).status_code == 201
        trader = bearer(token_for(client, "tess", "tess-password")["access_token"])
        points = [{"timestamp": f"2026-01-02T00:0{i}:00Z", "price": 100.0 + i} for i in range(3)]
        ingested = client.post("/prices/BTC/USD", json={"points": points}, headers=trader)
        assert ingested.status_code == 200, ingested.text
        assert ingested.json()["inserted"] == 3
        assert client.get("/prices/BTC/USD", headers=trader).json()["count"] == 3
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        refreshed = client.post("/token", data=refresh)
        assert refreshed.status_code == 200
        assert client.post("/token/revoke", data={"token": tokens["access_token"]}).status_code == 200
        assert client.get("/me", headers=admin).status_code == 401
        new_admin = bearer(refreshed.json()["access_token"])
        verified = client.get("/audit/verify", headers=new_admin)
        assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
    with psycopg.connect(_dsn(granted.owner_url)) as owner:
        actors = {r[0] for r in owner.execute("SELECT DISTINCT actor FROM audit_events")}
        users = {r[0] for r in owner.execute("SELECT username FROM users")}
    assert "user:tess" in actors and users == {"admin", "tess"}


def test_a_schema_behind_the_release_is_a_clear_error_for_the_app_role(granted: Deployment) -> None:
    with psycopg.connect(_dsn(granted.owner_url), autocommit=True) as owner:
        owner.execute("DELETE FROM alembic_version")  # as if a newer release brought a migration
    with pytest.raises(ConfigurationError, match="genesis db upgrade` as the owner"):
        upgrade_database(granted.app_url)


@pytest.mark.postgres
def test_the_partition_keeper_as_the_app_role_warns_once_and_the_owner_creates_them(
    granted: Deployment, cli_as: CliAs, partition_log: list[logging.LogRecord]
) -> None:
    now = datetime.now(UTC)
    ahead = add_months(month_start(now.year, now.month), 3)
    with psycopg.connect(_dsn(granted.owner_url), autocommit=True) as owner:
        owner.execute(f"DROP TABLE {partition_name(ahead)}")
    assert _ensure(granted.app_url, now) == []
    assert _ensure(granted.app_url, now) == []  # every few hours: no new warning
    assert [(r.levelname, r.getMessage()) for r in partition_log] == [
        ("WARNING", f"this database role may not create audit partitions (missing: {partition_name(ahead)}); "
                    "they must be created by the owner of audit_events: run `genesis db partitions` "
                    "(or `genesis db upgrade`) as the owner, e.g. daily"),
    ]
    # A month with no partition yet (the owner's job was not run): one error, still no exception.
    later = add_months(ahead, 12)
    assert _ensure(granted.app_url, later) == []
    assert [r.levelname for r in partition_log] == ["WARNING", "ERROR"]
    assert partition_name(later) in partition_log[1].getMessage()

    as_app = cli_as(granted.app_url, "db", "partitions")
    assert as_app.exit_code == 4 and "owner" in as_app.output
    as_owner = cli_as(granted.owner_url, "db", "partitions")
    assert as_owner.exit_code == 0 and partition_name(ahead) in as_owner.output, as_owner.output
    again = cli_as(granted.owner_url, "db", "partitions")
    assert again.exit_code == 0 and "present" in again.output

    # The new partition is covered: the default privileges give SELECT, writes still go through the parent only.
    event = new_event("future.event", actor="t", correlation_id="f", occurred_at_us=to_us(ahead) + 1)
    store = open_audit_store(granted.app_url)
    try:
        store.append([event])
    finally:
        store.close()
    with psycopg.connect(_dsn(granted.app_url)) as conn:
        row = conn.execute("SELECT tableoid::regclass::text FROM audit_events WHERE action = 'future.event'").fetchone()
        assert row == (partition_name(ahead),)
        assert conn.execute(f"SELECT count(*) FROM {partition_name(ahead)}").fetchone() == (1,)
        for statement in (f"UPDATE {partition_name(ahead)} SET actor = 'x'", f"DELETE FROM {partition_name(ahead)}"):
            with pytest.raises(Denied):
                conn.execute(statement)
            conn.rollback()


@pytest.mark.postgres
def test_the_owner_skips_a_month_whose_events_already_sit_in_default(
    deployment: Deployment, partition_log: list[logging.LogRecord]
) -> None:
    now = datetime.now(UTC)
    far = add_months(month_start(now.year, now.month), 24)
    store = open_audit_store(deployment.owner_url)
    try:  # clock skew: an event two years ahead lands in DEFAULT
        store.append([new_event("skewed", actor="t", correlation_id="s", occurred_at_us=to_us(far) + 5)])
    finally:
        store.close()
    created = _ensure(deployment.owner_url, far)
    assert partition_name(far) not in created and partition_name(add_months(far, 1)) in created
    assert any(partition_name(far) in r.getMessage() and r.levelname == "WARNING" for r in partition_log)
