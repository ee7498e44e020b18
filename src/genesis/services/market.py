"""Market data use cases: validate and ingest price points, read them back, import CSV files.

A price cannot be poisoned in advance: a timestamp later than now plus ``GENESIS_PRICE_MAX_FUTURE_SECONDS`` is
refused, and a point that differs from the one stored at its timestamp is a conflict (refused, or replaced when
asked - and then audited with the old and new values), never a silent duplicate.
"""

from __future__ import annotations

import asyncio
import csv
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from genesis.errors import Conflict, InvalidInput, NotFound
from genesis.storage.protocols import Announcer, Outboxed, PricePoint, PriceStore
from genesis.timeutil import now_us, rfc3339, to_us

if TYPE_CHECKING:
    from genesis.push.notice import Notice

# The symbol grammar, written once: one or more segments separated by "/", each starting with a letter or digit and
# going on with letters, digits and . _ : ^ = -; at most 32 characters in all. No segment is empty, "." or "..", so a
# symbol can never read as a path (A//B, A/../B, trailing "/"). Checked with fullmatch (and len) wherever a symbol
# enters: re.match with "$" would accept a trailing newline.
SYMBOL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:^=-]*(?:/[A-Za-z0-9][A-Za-z0-9._:^=-]*)*$")
SYMBOL_MAX_LENGTH = 32
SYMBOL_RULE = ("1-32 characters: segments separated by /, each starting with a letter or digit and going on with "
               "letters, digits and . _ : ^ = - (no empty, . or .. segment), e.g. BTC/USD, BRK.B, ES=F")


def is_symbol(symbol: str) -> bool:
    """Whether ``symbol`` follows the grammar (SYMBOL_PATTERN, at most SYMBOL_MAX_LENGTH characters)."""
    return len(symbol) <= SYMBOL_MAX_LENGTH and SYMBOL_PATTERN.fullmatch(symbol) is not None


def check_symbol(symbol: str) -> str:
    """The symbol, validated against the grammar (case is preserved).

    Raises:
        InvalidInput: it does not follow the grammar (the message states the rule, never the symbol).
    """
    if not is_symbol(symbol):
        raise InvalidInput(f"invalid symbol: {SYMBOL_RULE}")
    return symbol


def check_points(points: Sequence[PricePoint], *, not_after_us: int | None = None, offset: int = 0) -> None:
    """Prices finite and > 0, timestamps strictly increasing and not after ``not_after_us``.

    Raises:
        InvalidInput: naming the index of the first bad point (``offset`` + its position in ``points``).
    """
    previous = None
    for index, point in enumerate(points, offset):
        for name in ("close", "open", "high", "low"):
            value = getattr(point, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise InvalidInput(f"points[{index}].{name} must be a finite number > 0")
        if point.volume is not None and (not math.isfinite(point.volume) or point.volume < 0):
            raise InvalidInput(f"points[{index}].volume must be a finite number >= 0")
        if previous is not None and point.ts_us <= previous:
            raise InvalidInput(f"points[{index}].timestamp must be later than the one before it "
                               "(timestamps strictly increasing, no duplicates)")
        if not_after_us is not None and point.ts_us > not_after_us:
            raise InvalidInput(f"points[{index}].timestamp is in the future: prices may be stored up to "
                               "GENESIS_PRICE_MAX_FUTURE_SECONDS ahead of the server's clock")
        previous = point.ts_us


def future_bound(max_future_seconds: int) -> int:
    """The latest timestamp a price may have now (microseconds)."""
    return now_us() + max_future_seconds * 1_000_000


@dataclass(frozen=True, slots=True)
class IngestResult:
    symbol: str
    received: int
    inserted: int
    duplicates: int
    replaced: list[tuple[PricePoint, PricePoint]] = field(default_factory=list)  # (old, new)


def point_view(point: PricePoint) -> dict[str, Any]:
    """A stored point as the API shows it."""
    return {"timestamp": rfc3339(point.ts_us), "close": point.close, "open": point.open, "high": point.high,
            "low": point.low, "volume": point.volume}


class PriceConflict(Conflict):
    """Points whose timestamps are stored with other values; nothing of the request was stored."""

    code = "price-conflict"

    def __init__(self, conflicts: Sequence[tuple[PricePoint, PricePoint]]) -> None:
        super().__init__(
            f"{len(conflicts)} point(s) conflict with stored prices (same timestamp, other values); nothing was "
            "stored. Send identical values, or ask to replace with ?on_conflict=replace",
            details={"conflicts": [{"stored": point_view(stored)} for stored, _ in conflicts[:MAX_CONFLICTS_SHOWN]],
                     "conflict_count": len(conflicts)},
            audit={"conflicts": len(conflicts)},
        )


MAX_CONFLICTS_SHOWN = 100
CHECK_BATCH = 5_000


class Announced(Protocol):
    """Where an ingestion's notices go once it committed (``genesis.services.push.Publisher``)."""

    outbox_limit: int

    async def committed(self, notices: Sequence[Notice], outboxed: Outboxed | None = None) -> int: ...


async def ingest_prices(
    *, store: PriceStore, symbol: str, points: Sequence[PricePoint], max_future_seconds: int, replace: bool = False,
    announcer: Announcer | None = None, publisher: Announced | None = None,
) -> IngestResult:
    """Store points for ``symbol``: new ones inserted, identical re-posts counted as duplicates.

    With an ``announcer`` and a ``publisher``, the inserted points and their anomalies are announced:
    webhook deliveries in the ingesting transaction, stream messages once it committed.

    Raises:
        InvalidInput: a bad symbol or point, or a timestamp further in the future than ``max_future_seconds``.
        PriceConflict: a point differs from the stored one at its timestamp and ``replace`` is False (409).
    """
    check_symbol(symbol)
    not_after = future_bound(max_future_seconds)
    for start in range(0, len(points), CHECK_BATCH):  # up to 100,000 points: the loop serves others in between
        first = max(start - 1, 0)  # one point of overlap: the order is checked across batches too
        check_points(points[first : start + CHECK_BATCH], not_after_us=not_after, offset=first)
        if len(points) > CHECK_BATCH:
            await asyncio.sleep(0)
    announcing = announcer if publisher is not None else None
    write = await store.add_many(symbol, points, on_conflict="replace" if replace else "refuse",
                                 announcer=announcing, outbox_limit=publisher.outbox_limit if publisher else 0)
    if write.conflicts and not replace:
        raise PriceConflict(write.conflicts)
    if publisher is not None and write.notices:
        await publisher.committed(write.notices, write.outbox)
    return IngestResult(symbol, len(points), write.inserted, write.duplicates,
                        write.conflicts if write.replaced else [])


async def read_price_batches(
    *, store: PriceStore, symbol: str, start_us: int | None, end_us: int | None, limit: int, batch: int = 5_000
) -> AsyncIterator[list[PricePoint]]:
    """The stored points of ``symbol`` in time order, ``batch`` at a time (a large read never holds the loop).

    Raises:
        InvalidInput: a bad symbol or range.
        NotFound: nothing is stored for the symbol (raised before the first batch).
    """
    check_symbol(symbol)
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise InvalidInput("end must be later than start")
    empty = True
    async for points in store.range_batches(symbol, start_us=start_us, end_us=end_us, limit=limit, batch=batch):
        empty = False
        yield points
    if empty and not await store.exists(symbol):
        raise NotFound("no prices stored for this symbol")


async def read_prices(
    *, store: PriceStore, symbol: str, start_us: int | None, end_us: int | None, limit: int
) -> list[PricePoint]:
    check_symbol(symbol)
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise InvalidInput("end must be later than start")
    found = await store.range(symbol, start_us=start_us, end_us=end_us, limit=limit)
    if not found and not await store.exists(symbol):
        raise NotFound("no prices stored for this symbol")
    return found


# --- CSV import ----------------------------------------------------------------

TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "ts", "open_time")
CLOSE_COLUMNS = ("close", "adj close", "adj_close", "price", "last")


@dataclass
class ImportReport:
    rows_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    conflicts: list[tuple[int, PricePoint, PricePoint]] = field(default_factory=list)  # (line, stored, in the file)
    replaced: int = 0


def parse_timestamp(text: str) -> int:
    """Microseconds since the epoch from ISO 8601 text, a date, or epoch seconds/milliseconds."""
    value = text.strip()
    if not value:
        raise ValueError("empty timestamp")
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        number = float(value)
        if abs(number) >= 1e11:  # epoch milliseconds (Binance-style exports)
            number /= 1000.0
        return round(number * 1_000_000)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_us(moment)


def _column(header: list[str], names: Iterable[str]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def read_csv_points(path: Path) -> Iterator[tuple[int, PricePoint | str]]:
    """Yield (line number, point or rejection reason) for each data row of an OHLCV CSV file."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InvalidInput("the file is empty")
        t_col, c_col = _column(header, TIME_COLUMNS), _column(header, CLOSE_COLUMNS)
        if t_col is None or c_col is None:
            raise InvalidInput(
                f"{path}: need a time column ({', '.join(TIME_COLUMNS)}) and a close column "
                f"({', '.join(CLOSE_COLUMNS)}); found {', '.join(header)}"
            )
        extra = {name: _column(header, (name,)) for name in ("open", "high", "low", "volume")}
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                ts = parse_timestamp(row[t_col])
                values = {name: (float(row[idx]) if idx is not None and row[idx].strip() else None)
                          for name, idx in extra.items()}
                point = PricePoint(ts_us=ts, close=float(row[c_col]), **values)
                check_points([point])
            except (ValueError, IndexError, InvalidInput) as exc:
                yield line, str(exc).replace("points[0].", "")
                continue
            yield line, point


async def import_csv(
    *, store: PriceStore, symbol: str, path: Path, max_future_seconds: int, replace: bool = False,
    batch_size: int = 10_000, progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV file in batches; bad rows are reported with their line numbers, good ones kept.

    A row whose timestamp is stored with other values is a conflict: reported with its line (and kept out of the
    store unless ``replace``), apart from identical rows, which are duplicates.
    """
    check_symbol(symbol)
    report = ImportReport()
    batch: dict[int, PricePoint] = {}
    lines: dict[int, int] = {}
    not_after = future_bound(max_future_seconds)

    async def flush() -> None:
        if batch:
            points = [batch[ts] for ts in sorted(batch)]
            write = await store.add_many(symbol, points, on_conflict="replace" if replace else "skip")
            report.inserted += write.inserted
            report.duplicates += write.duplicates
            report.replaced += write.replaced
            report.conflicts.extend((lines[new.ts_us], stored, new) for stored, new in write.conflicts)
            if progress:
                progress(len(points))
            batch.clear()
            lines.clear()

    for line, item in read_csv_points(path):
        report.rows_read += 1
        if isinstance(item, str):
            report.rejected.append((line, item))
            continue
        if item.ts_us > not_after:
            report.rejected.append((line, "timestamp is in the future (GENESIS_PRICE_MAX_FUTURE_SECONDS)"))
            continue
        if item.ts_us in batch:
            report.duplicates += 1
            continue
        batch[item.ts_us] = item
        lines[item.ts_us] = line
        if len(batch) >= batch_size:
            await flush()
    await flush()
    report.conflicts.sort()
    return report
