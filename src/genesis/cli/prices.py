"""``genesis prices``: import price files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from genesis.cli.common import record, run_with_runtime
from genesis.runtime import Runtime
from genesis.safetext import printable
from genesis.services import market

app = typer.Typer(help="Import and inspect stored prices.", no_args_is_help=True, rich_markup_mode=None,
                  add_completion=False)


@app.callback()
def prices() -> None:
    """Import and inspect stored prices."""


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="OHLCV CSV file.")],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help=market.SYMBOL_RULE)],
    replace: Annotated[bool, typer.Option("--replace", help="Replace stored points that the file contradicts "
                                          "(each replacement is audited with the old and new values).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Import a CSV with a time column and a close (or price) column; open/high/low/volume are optional.

    Rows identical to stored points are skipped as duplicates; rows that contradict a stored point are conflicts,
    reported and left out unless --replace; bad rows are reported with their line numbers.
    """
    show_progress = sys.stderr.isatty() and not as_json

    async def action(rt: Runtime) -> market.ImportReport:
        limit = rt.settings.price_max_future_seconds
        if not show_progress:
            report = await market.import_csv(store=rt.prices, symbol=symbol, path=file, max_future_seconds=limit,
                                             replace=replace)
        else:
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task(f"importing {file.name}", total=_count_lines(file))
                report = await market.import_csv(store=rt.prices, symbol=symbol, path=file, max_future_seconds=limit,
                                                 replace=replace, progress=lambda n: progress.advance(task, n))
        await record(rt, "prices.import", f"imported {file.name} into {symbol}", target=symbol,
                     metadata={"rows_read": report.rows_read, "inserted": report.inserted,
                               "duplicates": report.duplicates, "conflicts": len(report.conflicts),
                               "replaced": report.replaced, "rejected": len(report.rejected)})
        if report.replaced:
            for start in range(0, len(report.conflicts), 500):
                chunk = report.conflicts[start : start + 500]
                await record(rt, "prices.replaced", f"replaced {len(chunk)} stored point(s) of {symbol}",
                             target=symbol, metadata={"points": [
                                 {"line": line, "old": market.point_view(old), "new": market.point_view(new)}
                                 for line, old, new in chunk]})
        return report

    report = run_with_runtime(action)
    if as_json:
        typer.echo(json.dumps({
            "symbol": symbol, "rows_read": report.rows_read, "inserted": report.inserted,
            "duplicates": report.duplicates, "replaced": report.replaced,
            "conflicts": [{"line": line, "stored": market.point_view(stored), "file": market.point_view(new)}
                          for line, stored, new in report.conflicts],
            "rejected": [{"line": line, "reason": reason} for line, reason in report.rejected]}))
    else:
        conflicts = (f"{report.replaced} replaced" if replace else
                     f"{len(report.conflicts)} conflicting with stored points (not stored; --replace to overwrite)")
        typer.echo(f"{printable(symbol)}: {report.rows_read} rows read, {report.inserted} inserted, "
                   f"{report.duplicates} skipped as duplicates, {conflicts}, {len(report.rejected)} rejected")
        for line, stored, new in report.conflicts[:50]:
            typer.echo(f"  line {line}: stored close {stored.close:g}, file close {new.close:g}"
                       f" at {market.point_view(new)['timestamp']}")
        for line, reason in report.rejected[:50]:
            typer.echo(f"  line {line}: {printable(reason)}")
        if len(report.rejected) > 50:
            typer.echo(f"  ... and {len(report.rejected) - 50} more")
    if report.rejected and report.inserted == 0 and report.duplicates == 0 and not report.conflicts:
        raise typer.Exit(2)
