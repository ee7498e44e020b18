"""``genesis prices``: import price files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from genesis.cli.common import record, run_with_runtime
from genesis.runtime import Runtime
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
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Import a CSV with a time column and a close (or price) column; open/high/low/volume are optional.

    Rows whose timestamp is already stored are skipped; bad rows are reported with their line numbers.
    """
    show_progress = sys.stderr.isatty() and not as_json

    async def action(rt: Runtime) -> market.ImportReport:
        if not show_progress:
            report = await market.import_csv(store=rt.prices, symbol=symbol, path=file)
        else:
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task(f"importing {file.name}", total=_count_lines(file))
                report = await market.import_csv(store=rt.prices, symbol=symbol, path=file,
                                                 progress=lambda n: progress.advance(task, n))
        await record(rt, "prices.import", f"imported {file.name} into {symbol}", target=symbol,
                              metadata={"rows_read": report.rows_read, "inserted": report.inserted,
                                        "duplicates": report.duplicates, "rejected": len(report.rejected)})
        return report

    report = run_with_runtime(action)
    if as_json:
        typer.echo(json.dumps({"symbol": symbol, "rows_read": report.rows_read, "inserted": report.inserted,
                               "duplicates": report.duplicates,
                               "rejected": [{"line": line, "reason": reason} for line, reason in report.rejected]}))
    else:
        typer.echo(f"{symbol}: {report.rows_read} rows read, {report.inserted} inserted, "
                   f"{report.duplicates} skipped as duplicates, {len(report.rejected)} rejected")
        for line, reason in report.rejected[:50]:
            typer.echo(f"  line {line}: {reason}")
        if len(report.rejected) > 50:
            typer.echo(f"  ... and {len(report.rejected) - 50} more")
    if report.rejected and report.inserted == 0 and report.duplicates == 0:
        raise typer.Exit(2)
