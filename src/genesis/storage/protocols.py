"""The small interfaces services depend on; SQL implementations live beside them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from genesis.push.notice import Notice


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class ClientRecord:
    id: int
    client_id: str
    secret_hash: str
    role: str
    description: str
    revoked: bool


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    jti: str
    family_id: str
    subject: str
    scope: str
    expires_at_us: int
    rotated_at_us: int | None
    revoked_at_us: int | None


class PricePoint(NamedTuple):
    """One stored price: a tick (close only) or a bar. A named tuple: bulk ingestion builds
    10,000 per request and a frozen dataclass costs ~1 us each to construct."""

    ts_us: int
    close: float
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None


@dataclass(frozen=True, slots=True)
class BacktestRecord:
    id: str
    owner: str
    strategy_name: str
    params: dict[str, Any]
    symbol: str | None
    n_prices: int
    metrics: dict[str, Any]
    score: float | None
    equity: list[float] | None
    created_at_us: int


@dataclass(frozen=True, slots=True)
class Outboxed:
    """The webhook deliveries a transaction wrote, and the endpoints it disabled for a full outbox."""

    rows: int = 0
    disabled: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one ingestion stored and announced (to be published once it committed)."""

    inserted: int
    notices: list[Notice]
    outbox: Outboxed = field(default_factory=Outboxed)


class Announcer(Protocol):
    """Turns the points an ingestion inserts into notices, inside its transaction (``services.announce``)."""

    @property
    def history(self) -> int:
        """Stored closes needed before the first appended point."""
        ...

    def announce(
        self, symbol: str, inserted: Sequence[PricePoint], appended_from: int, tail: Sequence[float],
    ) -> list[Notice]: ...


class UserStore(Protocol):
    async def create(self, *, username: str, password_hash: str, role: str) -> UserRecord: ...
    async def get(self, username: str) -> UserRecord | None: ...
    async def list(self) -> list[UserRecord]: ...
    async def count(self) -> int: ...
    async def set_disabled(self, username: str, disabled: bool) -> bool: ...
    async def set_password(self, username: str, password_hash: str) -> bool: ...
    async def upgrade_password_hash(self, username: str, old_hash: str, new_hash: str) -> bool: ...


class ClientStore(Protocol):
    async def create(self, *, client_id: str, secret_hash: str, role: str, description: str) -> ClientRecord: ...
    async def get(self, client_id: str) -> ClientRecord | None: ...
    async def list(self) -> list[ClientRecord]: ...
    async def upgrade_secret_hash(self, client_id: str, old_hash: str, new_hash: str) -> bool: ...
    async def revoke(self, client_id: str) -> bool: ...


class TokenStore(Protocol):
    async def add_refresh(
        self, *, jti: str, family_id: str, subject: str, scope: str, expires_at_us: int
    ) -> None: ...
    async def get_refresh(self, jti: str) -> RefreshRecord | None: ...
    async def mark_rotated(self, jti: str) -> bool: ...
    async def revoke_family(self, family_id: str) -> int: ...
    async def revoke_access(self, jti: str, expires_at_us: int) -> None: ...


class PrincipalStore(Protocol):
    async def token_status(self, *, kind: str, name: str, jti: str) -> tuple[str | None, bool]: ...
    def close(self) -> None: ...


class PriceStore(Protocol):
    async def add_many(self, symbol: str, points: Sequence[PricePoint]) -> int: ...
    async def ingest(
        self, symbol: str, points: Sequence[PricePoint], *, announcer: Announcer, outbox_limit: int,
    ) -> Ingested: ...
    async def range(
        self, symbol: str, *, start_us: int | None, end_us: int | None, limit: int | None
    ) -> list[PricePoint]: ...
    async def closes(
        self, symbol: str, *, start_us: int | None = None, end_us: int | None = None
    ) -> tuple[list[int], list[float]]: ...
    async def exists(self, symbol: str) -> bool: ...
    async def stats(self, symbol: str) -> tuple[int, int | None]: ...


class BacktestStore(Protocol):
    async def add(
        self, record: BacktestRecord, *, notices: Sequence[Notice] = (), outbox_limit: int = 0,
    ) -> Outboxed: ...
    async def get(self, backtest_id: str) -> BacktestRecord | None: ...
    async def scores(self, strategy_name: str | None = None) -> dict[str, list[tuple[int, float | None]]]: ...
