"""``genesis audit``: query, tail, verify, export and archive the audit trail; sign and watch its tree heads."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from genesis.audit import AuditStore, archive_events, export_events
from genesis.audit.checkpoints import SIGNING_KEY_FILE, export_public_key
from genesis.audit.exportfile import ExportFormatError, ExportReport, verify_export_file
from genesis.audit.headlog import read as read_head_log
from genesis.audit.note import NoteError
from genesis.audit.witness import RemoteError, RemoteLog, observe
from genesis.cli.common import fail, operator, record, run_with_runtime, settings
from genesis.config import Settings
from genesis.errors import GenesisError, InvalidInput, Unavailable
from genesis.runtime import Runtime, audit_backend
from genesis.safetext import printable_row
from genesis.services import audit_trail, schema
from genesis.timeutil import rfc3339, to_us

app = typer.Typer(help="Query, verify, export and archive the tamper-evident audit trail; sign and watch its heads.",
                  no_args_is_help=True, rich_markup_mode=None, add_completion=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (the default when piped).")]
KeyOption = Annotated[str | None, typer.Option(
    "--key", help="The log's key (vkey, from `genesis audit public-key --vkey`), obtained out of band. "
                  "Default: this installation's own key.")]
TOKEN_ENV = "GENESIS_MONITOR_TOKEN"
CLIENT_SECRET_ENV = "GENESIS_MONITOR_CLIENT_SECRET"
ClientOption = Annotated[str | None, typer.Option(
    "--client-id", help=f"Log in to --url as this machine client (secret in ${CLIENT_SECRET_ENV}); "
                        f"or give a bearer token in ${TOKEN_ENV}.")]


def _store(cfg: Settings) -> AuditStore:
    """The audit store for reading (no writer: a query writes nothing, not even a head)."""
    Runtime.migrate(cfg)
    try:
        return audit_backend(cfg).open_store()
    except Exception as exc:
        fail(Unavailable(f"the audit store cannot be opened: {type(exc).__name__}", component="audit"))
        raise


def _as_json(flag: bool) -> bool:
    return flag or not sys.stdout.isatty()


def _parse_time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(InvalidInput(f"{name} must be an ISO 8601 date or time (got {value!r})"))
    if len(value) == 10 and name == "--end":  # a date-only end includes the whole day
        return to_us(moment.replace(tzinfo=UTC)) + 86_400_000_000
    return to_us(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:  # json.dumps escapes every control and non-ASCII character
        typer.echo(json.dumps(event, separators=(",", ":")))
    else:  # every field may hold what a client sent: shown escaped, never acted on by the terminal
        typer.echo(f"{event['seq']:>8} " + printable_row(
            event["timestamp"], event["outcome"], event["action"], event["actor"], event.get("status") or "",
            event["message"][:80], widths=(27, 7, 24, 24, 3)))


@app.command()
def query(
    start: Annotated[str | None, typer.Option("--start", help="Inclusive start (ISO 8601).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Exclusive end; a date includes that whole day.")] = None,
    actor: Annotated[str | None, typer.Option(help="e.g. user:alice or client:bot")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. auth.login.failed")] = None,
    outcome: Annotated[str | None, typer.Option(help="success, failure or denied")] = None,
    correlation_id: Annotated[str | None, typer.Option("--correlation-id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Most events to print.")] = 100,
    desc: Annotated[bool, typer.Option("--desc", help="Newest first.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Print events matching every filter."""
    cfg = settings()
    store = _store(cfg)
    printed, cursor = 0, None
    try:
        while printed < limit:
            page = audit_trail.query_events(
                store, start_us=_parse_time(start, "--start"), end_us=_parse_time(end, "--end"), actor=actor,
                action=action, outcome=outcome, level=None, correlation_id=correlation_id, cursor=cursor,
                limit=min(1000, limit - printed), order="desc" if desc else "asc",
            )
            for event in page.events:
                _print_event(event, _as_json(as_json))
            printed += len(page.events)
            cursor = page.next_cursor
            if cursor is None:
                break
    except GenesisError as exc:
        fail(exc)
    finally:
        store.close()


@app.command()
def tail(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    lines: Annotated[int, typer.Option("-n", min=1, max=10_000, help="How many of the newest events.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Print the newest events (and follow new ones with -f)."""
    cfg = settings()
    store = _store(cfg)
    try:
        newest = audit_trail.query_events(store, start_us=None, end_us=None, actor=None, action=None, outcome=None,
                                          level=None, correlation_id=None, cursor=None, limit=lines, order="desc")
        events = list(reversed(newest.events))
        for event in events:
            _print_event(event, _as_json(as_json))
        last = events[-1]["seq"] if events else store.boundary().seq
        while follow:
            time.sleep(1.0)
            page = audit_trail.query_events(store, start_us=None, end_us=None, actor=None, action=None,
                                            outcome=None, level=None, correlation_id=None, cursor=str(last),
                                            limit=1000, order="asc")
            for event in page.events:
                _print_event(event, _as_json(as_json))
                last = event["seq"]
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


def _with_progress(rows: Iterator[Any], total: int, label: str, show: bool) -> Iterator[Any]:
    if not show:
        yield from rows
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=total)
        for count, row in enumerate(rows, 1):
            if count % 5000 == 0:
                progress.update(task, completed=count)
            yield row


def _log_key(cfg: Settings, key: str | None) -> str:
    """The vkey a verification trusts: the one given, or this installation's (when it has a signing key)."""
    if key is not None:
        return key
    if not (cfg.data_dir / SIGNING_KEY_FILE).exists():
        fail(InvalidInput(f"no signing key in {cfg.data_dir}: give the log's key with --key VKEY"))
    return audit_trail.log_verifier(cfg.data_dir, cfg.audit_log_origin).vkey


def _heads_from(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        log = read_head_log(path)
    except (OSError, ValueError) as exc:
        fail(InvalidInput(f"cannot read the head log {path}: {exc}"))
        raise
    if not log.notes:
        fail(InvalidInput(f"{path} holds no signed tree head"))
    return log.notes


def _remote(url: str, client_id: str | None) -> RemoteLog:
    secret = os.environ.get(CLIENT_SECRET_ENV)
    if client_id is not None and not secret:
        fail(InvalidInput(f"--client-id needs its secret in ${CLIENT_SECRET_ENV}"))
    try:
        return RemoteLog(url, token=os.environ.get(TOKEN_ENV), client_id=client_id, client_secret=secret)
    except ValueError as exc:
        fail(InvalidInput(str(exc)))
        raise


def _verify_file(cfg: Settings, path: Path, key: str | None, against: Path | None) -> ExportReport:
    try:
        return verify_export_file(
            path, log_key=_log_key(cfg, key), heads=_heads_from(against),
            chain_keys=audit_trail.trusted_public_keys(cfg.data_dir, cfg.audit_public_keys)
            if (cfg.data_dir / SIGNING_KEY_FILE).exists() else [],
            hmac_key=cfg.audit_hmac_key.get_secret_value() if cfg.audit_hmac_key else None,
            workers=os.cpu_count() or 1,
        )  # fmt: skip
    except (ExportFormatError, NoteError, OSError) as exc:
        fail(InvalidInput(f"{path}: {exc}"))
        raise


@app.command()
def verify(
    from_seq: Annotated[int | None, typer.Option("--from", min=1, help="First sequence number to check.")] = None,
    to_seq: Annotated[int | None, typer.Option("--to", min=1, help="Last sequence number to check.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Verify this export file, with no database.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Verify the trail of the Genesis server at this base "
                                                        "URL (downloads its export).")] = None,
    against: Annotated[Path | None, typer.Option("--against", help="A head log: the trail must be consistent "
                                                                   "with every head in it.")] = None,
    key: KeyOption = None,
    client_id: ClientOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the chain, the Merkle tree and the signed heads; exit 1 naming the first broken sequence number."""
    cfg = settings()
    if sum(x is not None for x in (file, url)) > 1 or ((file or url) and (from_seq or to_seq)):
        fail(InvalidInput("give at most one of --file and --url, and --from/--to only for the database"))
    if file is not None:
        result: dict[str, Any] = _verify_file(cfg, file, key, against).to_dict()
    elif url is not None:
        if key is None:
            fail(InvalidInput("--url needs the log's key: --key VKEY (never trust a key the server sends)"))
        remote = _remote(url, client_id)
        with tempfile.NamedTemporaryFile(prefix="genesis-export-", suffix=".ndjson") as download:
            try:
                remote.download_export(download)
            except RemoteError as exc:
                fail(Unavailable(str(exc), component="remote"))
            download.flush()
            result = _verify_file(cfg, Path(download.name), key, against).to_dict()
    else:
        store = _store(cfg)
        try:
            keys = audit_trail.trusted_keys(cfg.data_dir, cfg.audit_log_origin, cfg.audit_public_keys, key)
            hmac_key = cfg.audit_hmac_key.get_secret_value() if cfg.audit_hmac_key else None
            report = audit_trail.verify(store, hmac_key=hmac_key, keys=keys, heads=_heads_from(against),
                                        start_seq=from_seq, end_seq=to_seq)
        except GenesisError as exc:
            fail(exc)
            raise
        finally:
            store.close()
        result = report.to_dict()
    if _as_json(as_json):
        typer.echo(json.dumps(result))
    elif result["ok"]:
        typer.echo(f"ok: {result['events_checked']} events verified up to seq {result['last_seq']}, "
                   f"{result['checkpoints_matched']} signed heads/checkpoints matched, root {result['root']}")
    else:
        typer.echo(f"BROKEN at seq {result['first_bad_seq']}: {result['kind']} - {result['detail']}")
    if not result["ok"]:
        raise typer.Exit(1)


@app.command()
def export(
    output: Annotated[Path, typer.Argument(help="File to write (NDJSON, verifiable offline).")],
    from_seq: Annotated[int | None, typer.Option("--from", min=1)] = None,
    to_seq: Annotated[int | None, typer.Option("--to", min=1)] = None,
    proofs: Annotated[bool, typer.Option("--proofs", help="Each event with its inclusion proof.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Export the trail ending with a signed tree head of its last event; prints the file's SHA-256."""
    cfg = settings()
    Runtime.migrate(cfg)
    backend = audit_backend(cfg)
    try:
        heads = backend.heads()
        store = backend.open_store()
        if sys.stderr.isatty() and not as_json:
            from rich.console import Console

            with Console(stderr=True).status("exporting"):
                summary = export_events(store, output, heads=heads, start_seq=from_seq, end_seq=to_seq,
                                        proofs=proofs)
        else:
            summary = export_events(store, output, heads=heads, start_seq=from_seq, end_seq=to_seq, proofs=proofs)
    except GenesisError as exc:
        fail(exc)
        raise
    except Exception as exc:
        fail(Unavailable(f"the audit store cannot be opened: {type(exc).__name__}", component="audit"))
        raise
    finally:
        backend.close()
    result = {"path": str(summary.path), "sha256": summary.digest, "count": summary.count,
              "first_seq": summary.first_seq, "last_seq": summary.last_seq, "tree_size": summary.tree_size}
    typer.echo(json.dumps(result) if _as_json(as_json) else
               f"{summary.count} events (seq {summary.first_seq}..{summary.last_seq}) -> {summary.path}\n"
               f"signed tree head of size {summary.tree_size}; sha256 {summary.digest}")


@app.command()
def head(as_json: JsonOption = False) -> None:
    """Sign a tree head covering every event now (recorded as an operator action) and print it."""

    async def action(rt: Runtime) -> Any:
        await record(rt, "audit.head", "signed tree head requested", target="audit-heads")
        heads = rt.audit.heads()
        made = heads.make("on-demand")
        assert made is not None
        return audit_trail.head_view(made, heads.origin)

    view = run_with_runtime(action)
    typer.echo(json.dumps(view) if _as_json(as_json) else view["note"].rstrip("\n"))


@app.command()
def monitor(
    url: Annotated[str, typer.Option("--url", help="Base URL of the Genesis server to watch.")],
    state: Annotated[Path, typer.Option("--state", help="File that keeps the last head trusted (created on the "
                                                        "first run).")],
    key: Annotated[str | None, typer.Option("--key", help="The log's key (vkey); needed on the first run.")] = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (for cron).")] = False,
    interval: Annotated[float, typer.Option("--interval", min=1.0, help="Seconds between rounds.")] = 60.0,
    client_id: ClientOption = None,
) -> None:
    """Witness a server: verify each new head and its consistency with the last one trusted; exit 1 on a fork."""
    logger = _monitor_logging()
    remote = _remote(url, client_id)
    while True:
        try:
            seen = observe(remote, state, vkey=key)
        except (ValueError, OSError) as exc:
            fail(InvalidInput(str(exc)))
            raise
        size = seen.trusted.size if seen.trusted is not None else None
        if seen.failed:
            logger.error("AUDIT LOG MISBEHAVED (%s): %s; evidence kept in %s", seen.kind, seen.detail, seen.evidence)
            raise typer.Exit(1)
        if seen.kind == "unavailable":
            logger.warning("cannot check the log now: %s", seen.detail)
            if once:
                raise typer.Exit(Unavailable.exit_code)
        else:
            logger.info("%s: %s (trusted size %s)", seen.kind, seen.detail, size)
        if once:
            return
        time.sleep(interval)


class _Stderr(logging.Handler):
    """Log lines to whatever ``sys.stderr`` is when they are written (one line each)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a closed terminal must not stop the witness
            self.handleError(record)


def _monitor_logging() -> logging.Logger:
    logger = logging.getLogger("genesis.audit.witness")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


@app.command()
def archive(
    before: Annotated[str, typer.Option("--before", help="Archive events that occurred before this date.")],
    export_dir: Annotated[Path | None, typer.Option(help="Where the archive file goes (default <data>/archive).")]
    = None,
    as_json: JsonOption = False,
) -> None:
    """Export events before DATE with their digest, then prune them (refused inside the retention period)."""
    cfg = settings()
    before_us = _parse_time(before, "--before")
    assert before_us is not None
    moment = datetime.fromtimestamp(before_us / 1_000_000, tz=UTC)

    async def action(rt: Runtime) -> Any:
        store = rt.audit.store
        if store is None:
            raise Unavailable("the audit store is unavailable", component="audit")
        user, host = operator()
        return archive_events(store, before=moment, export_dir=export_dir or cfg.data_dir / "archive",
                              retention_days=cfg.audit_retention_days, heads=rt.audit.heads(),
                              chain_keys=audit_trail.trusted_public_keys(cfg.data_dir, cfg.audit_public_keys),
                              hmac_key=cfg.audit_hmac_key.get_secret_value() if cfg.audit_hmac_key else None,
                              recorder=rt.recorder, actor=f"cli:{user}@{host}")

    record = run_with_runtime(action)
    dropped = _drop_archived_partitions(cfg) if record is not None else []
    if record is None:
        typer.echo(json.dumps({"archived": 0}) if _as_json(as_json) else f"nothing before {rfc3339(before_us)}")
        return
    result = {"archived": record.last_seq - record.first_seq + 1, "first_seq": record.first_seq,
              "last_seq": record.last_seq, "sha256": record.digest, "location": record.location,
              "dropped_partitions": dropped}
    typer.echo(json.dumps(result) if _as_json(as_json) else
               f"archived seq {record.first_seq}..{record.last_seq} -> {record.location}\nsha256 {record.digest}"
               + (f"\ndropped partitions: {', '.join(dropped)}" if dropped else ""))


def _drop_archived_partitions(cfg: Settings) -> list[str]:
    """On PostgreSQL, detach and drop the monthly partitions the archive emptied."""
    return schema.drop_archived_partitions(cfg.db_url)


@app.command("public-key")
def public_key(
    vkey: Annotated[bool, typer.Option("--vkey", help="Print the log's verifier key (signed-note vkey) instead, "
                                                     "what `verify --key` and `monitor --key` take.")] = False,
) -> None:
    """Print the public key that verifies this installation's signed tree heads (PEM, or --vkey)."""
    cfg = settings()
    if vkey:
        typer.echo(audit_trail.log_verifier(cfg.data_dir, cfg.audit_log_origin).vkey)
        return
    typer.echo(export_public_key(cfg.data_dir).rstrip())
