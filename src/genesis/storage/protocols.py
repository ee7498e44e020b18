"""The small interfaces services depend on; SQL implementations live beside them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from genesis.push.notice import Notice


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool
    token_generation: int = 0


@dataclass(frozen=True, slots=True)
class ClientRecord:
    id: int
    client_id: str
    secret_hash: str
    role: str
    description: str
    revoked: bool
    token_generation: int = 0


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    jti: str
    family_id: str
    subject: str
    scope: str
    expires_at_us: int
    rotated_at_us: int | None
    revoked_at_us: int | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session: the refresh family started by one login, with its absolute end."""

    id: str
    subject: str
    scope: str
    created_at_us: int
    expires_at_us: int
    last_used_at_us: int
    revoked_at_us: int | None
    revoked_reason: str | None
    source_ip: str | None
    user_agent: str | None

    def active(self, now_us: int) -> bool:
        return self.revoked_at_us is None and now_us < self.expires_at_us


@dataclass(frozen=True, slots=True)
class TokenStatus:
    """What a bearer token's validity depends on, read in one query.

    ``role`` and ``generation`` are None when the principal is disabled, revoked or unknown;
    ``session_active`` is True for tokens that belong to no session.
    """

    role: str | None
    generation: int | None
    jti_revoked: bool
    session_active: bool


class PricePoint(NamedTuple):
    """One stored price: a tick (close only) or a bar. A named tuple: bulk ingestion builds
    10,000 per request and a frozen dataclass costs ~1 us each to construct."""

    ts_us: int
    close: float
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None


OnConflict = Literal["refuse", "skip", "replace"]
"""What ``PriceStore.add_many`` does with a point whose timestamp is stored with other values: refuse the whole
batch (nothing written), skip that point (the rest written), or replace the stored values."""


@dataclass(frozen=True, slots=True)
class PriceWrite:
    """What one ``add_many`` call did: identical re-posts are duplicates; a different value is a conflict."""

    inserted: int
    duplicates: int
    conflicts: list[tuple[PricePoint, PricePoint]]  # (stored before, sent), in timestamp order
    replaced: int  # conflicts whose stored values were replaced (on_conflict="replace")
    notices: list[Notice] = field(default_factory=list)  # what the inserted points announce (with an announcer)
    outbox: Outboxed = field(default_factory=lambda: Outboxed())  # their webhook deliveries, written in the transaction


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
    async def set_role(self, username: str, role: str) -> bool: ...
    async def end_sessions(self, username: str) -> bool: ...
    async def upgrade_password_hash(self, username: str, old_hash: str, new_hash: str) -> bool: ...


class ClientStore(Protocol):
    async def create(self, *, client_id: str, secret_hash: str, role: str, description: str) -> ClientRecord: ...
    async def get(self, client_id: str) -> ClientRecord | None: ...
    async def list(self) -> list[ClientRecord]: ...
    async def upgrade_secret_hash(self, client_id: str, old_hash: str, new_hash: str) -> bool: ...
    async def revoke(self, client_id: str) -> bool: ...
    async def end_sessions(self, client_id: str) -> bool: ...


class TokenStore(Protocol):
    async def add_refresh(
        self, *, jti: str, family_id: str, subject: str, scope: str, expires_at_us: int
    ) -> None: ...
    async def get_refresh(self, jti: str) -> RefreshRecord | None: ...
    async def mark_rotated(self, jti: str) -> bool: ...
    async def revoke_family(self, family_id: str, *, reason: str = "revoked") -> int: ...
    async def revoke_access(self, jti: str, expires_at_us: int) -> None: ...
    async def add_session(self, session: SessionRecord) -> None: ...
    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def touch_session(self, session_id: str, used_at_us: int) -> None: ...
    async def list_sessions(self, subject: str, *, active_at_us: int) -> list[SessionRecord]: ...
    async def revoke_sessions(self, subject: str, *, reason: str) -> int: ...


class PrincipalStore(Protocol):
    async def token_status(self, *, kind: str, name: str, jti: str, session_id: str | None) -> TokenStatus: ...
    def close(self) -> None: ...


class PriceColumns(NamedTuple):
    """A stored range as columns for bulk numeric work: float64 with NaN where a bar field is absent (ticks)."""

    ts_us: npt.NDArray[np.int64]
    close: npt.NDArray[np.float64]
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]


class PriceStore(Protocol):
    async def add_many(
        self, symbol: str, points: Sequence[PricePoint], *, on_conflict: OnConflict = "refuse",
        announcer: Announcer | None = None, outbox_limit: int = 0,
    ) -> PriceWrite: ...
    async def columns(
        self, symbol: str, *, start_us: int | None, end_us: int | None, limit: int | None
    ) -> PriceColumns: ...
    async def range(
        self, symbol: str, *, start_us: int | None, end_us: int | None, limit: int | None
    ) -> list[PricePoint]: ...
    def range_batches(
        self, symbol: str, *, start_us: int | None, end_us: int | None, limit: int, batch: int
    ) -> AsyncIterator[list[PricePoint]]: ...
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
    async def scores(
        self, strategy_name: str | None = None, *, owner: str | None = None
    ) -> dict[str, list[tuple[int, float | None]]]: ...
