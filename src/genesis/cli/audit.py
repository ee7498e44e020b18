"""``genesis audit``: query, tail, verify, export and archive the audit trail."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from genesis.audit import AuditStore, CheckpointSigner, archive_events, export_events, verify_chain
from genesis.audit.checkpoints import export_public_key
from genesis.audit.events import Col
from genesis.cli.common import fail, operator, run_with_runtime, settings
from genesis.config import Settings
from genesis.errors import GenesisError, InvalidInput, Unavailable
from genesis.runtime import Runtime, audit_backend
from genesis.safetext import printable_row
from genesis.services import audit_trail, schema
from genesis.timeutil import rfc3339, to_us

app = typer.Typer(help="Query, verify, export and archive the tamper-evident audit trail.", no_args_is_help=True,
                  rich_markup_mode=None, add_completion=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (the default when piped).")]


def _store(cfg: Settings) -> AuditStore:
    """The audit store for reading (no writer: a query writes nothing, not even a checkpoint)."""
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


@app.command()
def verify(
    from_seq: Annotated[int | None, typer.Option("--from", min=1, help="First sequence number to check.")] = None,
    to_seq: Annotated[int | None, typer.Option("--to", min=1, help="Last sequence number to check.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the hash chain and the signed checkpoints; exit 1 naming the first broken sequence number."""
    cfg = settings()
    store = _store(cfg)
    try:
        keys = audit_trail.trusted_public_keys(cfg.data_dir, cfg.audit_public_keys)
        hmac_key = cfg.audit_hmac_key.get_secret_value() if cfg.audit_hmac_key else None
        boundary, head = store.boundary(), store.head()
        first = max(from_seq or boundary.seq + 1, boundary.seq + 1)
        last = min(to_seq or head.seq, head.seq)
        prev_hash = boundary.hash
        if first > boundary.seq + 1:
            before = next(store.iter_rows(start_seq=first - 1, end_seq=first - 1), None)
            prev_hash = before[Col.HASH] if before else prev_hash
        rows = _with_progress(store.iter_rows(start_seq=first, end_seq=last), max(last - first + 1, 0),
                              "verifying", sys.stderr.isatty() and not as_json)
        checkpoints = store.checkpoints(min_seq=first - 1, max_seq=last) if to_seq is None else []
        report = verify_chain(rows, start_prev_hash=prev_hash, start_seq=first, hmac_key=hmac_key,
                              checkpoints=checkpoints, public_key=keys)
    finally:
        store.close()
    if _as_json(as_json):
        typer.echo(json.dumps(report.to_dict()))
    elif report.ok:
        typer.echo(f"ok: {report.events_checked} events verified up to seq {report.last_seq}, "
                   f"{report.checkpoints_matched} signed checkpoints matched")
    else:
        typer.echo(f"BROKEN at seq {report.first_bad_seq}: {report.kind} - {report.detail}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def export(
    output: Annotated[Path, typer.Argument(help="File to write (NDJSON, verifiable offline).")],
    from_seq: Annotated[int | None, typer.Option("--from", min=1)] = None,
    to_seq: Annotated[int | None, typer.Option("--to", min=1)] = None,
    as_json: JsonOption = False,
) -> None:
    """Export the trail with its checkpoints and a fresh signed checkpoint; prints the file's SHA-256."""
    cfg = settings()
    store = _store(cfg)
    try:
        if sys.stderr.isatty() and not as_json:
            from rich.console import Console

            with Console(stderr=True).status("exporting"):
                summary = export_events(store, output, start_seq=from_seq, end_seq=to_seq,
                                        signer=CheckpointSigner.from_data_dir(cfg.data_dir))
        else:
            summary = export_events(store, output, start_seq=from_seq, end_seq=to_seq,
                                    signer=CheckpointSigner.from_data_dir(cfg.data_dir))
    finally:
        store.close()
    result = {"path": str(summary.path), "sha256": summary.digest, "count": summary.count,
              "first_seq": summary.first_seq, "last_seq": summary.last_seq}
    typer.echo(json.dumps(result) if _as_json(as_json) else
               f"{summary.count} events (seq {summary.first_seq}..{summary.last_seq}) -> {summary.path}\n"
               f"sha256 {summary.digest}")


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
                              retention_days=cfg.audit_retention_days,
                              signer=CheckpointSigner.from_data_dir(cfg.data_dir), recorder=rt.recorder,
                              actor=f"cli:{user}@{host}")

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
def public_key() -> None:
    """Print the PEM public key that verifies this installation's signed checkpoints."""
    typer.echo(export_public_key(settings().data_dir).rstrip())
