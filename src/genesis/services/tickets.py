"""Stream tickets: issue one for an authenticated principal, redeem it once (see ``storage.tickets``)."""

from __future__ import annotations

from typing import Protocol

import orjson

from genesis.errors import Unauthenticated
from genesis.services.auth import Principal
from genesis.storage.tickets import new_ticket


class TicketStore(Protocol):
    async def put(self, ticket: str, value: bytes, ttl_seconds: float) -> None: ...
    async def take(self, ticket: str) -> bytes | None: ...
    async def close(self) -> None: ...


class TicketService:
    """Short-lived single-use tickets standing for a principal (``POST /stream/tickets``)."""

    def __init__(self, store: TicketStore, *, ttl_seconds: float) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds

    async def issue(self, principal: Principal) -> str:
        """A new ticket for ``principal``, valid once within ``ttl_seconds``.

        Raises:
            Unavailable: the shared ticket store (Redis) cannot be reached.
        """
        ticket = new_ticket()
        value = orjson.dumps({"subject": principal.subject, "kind": principal.kind, "name": principal.name,
                              "role": principal.role, "scopes": sorted(principal.scopes),
                              "jti": principal.token_jti, "exp": principal.token_expires_at})
        await self.store.put(ticket, value, self.ttl_seconds)
        return ticket

    async def redeem(self, ticket: str) -> Principal:
        """The principal a ticket was issued to; the ticket is spent.

        Raises:
            Unauthenticated: unknown, already used or expired.
            Unavailable: the shared ticket store (Redis) cannot be reached.
        """
        if not ticket or len(ticket) > 128:
            raise Unauthenticated("invalid or expired ticket")
        raw = await self.store.take(ticket)
        if raw is None:
            raise Unauthenticated("invalid or expired ticket (a ticket is used once, within its lifetime)")
        data = orjson.loads(raw)
        return Principal(subject=data["subject"], kind=data["kind"], name=data["name"], role=data["role"],
                         scopes=frozenset(data["scopes"]), token_jti=data["jti"], token_expires_at=int(data["exp"]))
