"""Market data use cases: validate and ingest price points, read them back, import CSV files."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from genesis.errors import InvalidInput, NotFound
from genesis.storage.protocols import Announcer, Outboxed, PricePoint, PriceStore
from genesis.timeutil import to_us

if TYPE_CHECKING:
    from genesis.push.notice import Notice

SYMBOL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/^=-]{0,31}$")
SYMBOL_RULE = "1-32 characters: letters, digits and . _ : / ^ = - (starting with a letter or digit), e.g. BTC/USD"


def check_symbol(symbol: str) -> str:
    """The symbol, validated against SYMBOL_PATTERN (case is preserved)."""
    if not SYMBOL_PATTERN.match(symbol):
        raise InvalidInput(f"invalid symbol {symbol!r}: {SYMBOL_RULE}")
    return symbol


def check_points(points: Sequence[PricePoint]) -> None:
    """Prices finite and > 0, timestamps strictly increasing; raise InvalidInput naming the index."""
    previous = None
    for index, point in enumerate(points):
        for name in ("close", "open", "high", "low"):
            value = getattr(point, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise InvalidInput(f"points[{index}].{name} must be a finite number > 0")
        if point.volume is not None and (not math.isfinite(point.volume) or point.volume < 0):
            raise InvalidInput(f"points[{index}].volume must be a finite number >= 0")
        if previous is not None and point.ts_us <= previous:
            raise InvalidInput(f"points[{index}].timestamp must be later than the one before it "
                               "(timestamps strictly increasing, no duplicates)")
        previous = point.ts_us


@dataclass(frozen=True, slots=True)
class IngestResult:
    symbol: str
    received: int
    inserted: int

    @property
    def duplicates(self) -> int:
        return self.received - self.inserted


class Announced(Protocol):
    """Where an ingestion's notices go once it committed (``genesis.services.push.Publisher``)."""

    outbox_limit: int

    async def committed(self, notices: Sequence[Notice], outboxed: Outboxed | None = None) -> int: ...


async def ingest_prices(
    *, store: PriceStore, symbol: str, points: Sequence[PricePoint], announcer: Announcer | None = None,
    publisher: Announced | None = None,
) -> IngestResult:
    """Store points for ``symbol``; points already stored (same timestamp) are skipped.

    With an ``announcer`` and a ``publisher``, the inserted points and their anomalies are announced:
    webhook deliveries in the ingesting transaction, stream messages once it committed.
    """
    check_symbol(symbol)
    check_points(points)
    if announcer is None or publisher is None:
        inserted = await store.add_many(symbol, points)
        return IngestResult(symbol, len(points), inserted)
    ingested = await store.ingest(symbol, points, announcer=announcer, outbox_limit=publisher.outbox_limit)
    await publisher.committed(ingested.notices, ingested.outbox)
    return IngestResult(symbol, len(points), ingested.inserted)


async def read_prices(
    *, store: PriceStore, symbol: str, start_us: int | None, end_us: int | None, limit: int
) -> list[PricePoint]:
    check_symbol(symbol)
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise InvalidInput("end must be later than start")
    found = await store.range(symbol, start_us=start_us, end_us=end_us, limit=limit)
    if not found and not await store.exists(symbol):
        raise NotFound(f"no prices stored for symbol {symbol!r}")
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
            raise InvalidInput(f"{path} is empty")
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
    *, store: PriceStore, symbol: str, path: Path, batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV file in batches; bad rows are reported with their line numbers, good ones kept."""
    check_symbol(symbol)
    report = ImportReport()
    batch: dict[int, PricePoint] = {}

    async def flush() -> None:
        if batch:
            points = [batch[ts] for ts in sorted(batch)]
            inserted = await store.add_many(symbol, points)
            report.inserted += inserted
            report.duplicates += len(points) - inserted
            if progress:
                progress(len(points))
            batch.clear()

    for line, item in read_csv_points(path):
        report.rows_read += 1
        if isinstance(item, str):
            report.rejected.append((line, item))
            continue
        if item.ts_us in batch:
            report.duplicates += 1
            continue
        batch[item.ts_us] = item
        if len(batch) >= batch_size:
            await flush()
    await flush()
    return report
