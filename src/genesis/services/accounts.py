"""Administration of users and machine clients (shared by the CLI and the API)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from genesis.errors import InvalidInput, NotFound
from genesis.security.passwords import generate_secret, hash_password, password_problem, run_hashing
from genesis.security.scopes import ROLES
from genesis.storage.protocols import ClientRecord, ClientStore, UserRecord, UserStore

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True, slots=True)
class NewClient:
    client_id: str
    client_secret: str  # shown once; only its hash is stored
    role: str


def _check_name(kind: str, name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidInput(f"{kind} must be 1-64 characters of letters, digits and . _ @ - (got {name!r})")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


async def create_user(*, users: UserStore, username: str, role: str, password: str) -> UserRecord:
    _check_name("username", username)
    _check_role(role)
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    password_hash = await run_hashing(hash_password, password)
    return await users.create(username=username, password_hash=password_hash, role=role)


async def set_user_disabled(*, users: UserStore, username: str, disabled: bool) -> None:
    if not await users.set_disabled(username, disabled):
        raise NotFound(f"no user named {username!r}")


async def set_user_password(*, users: UserStore, username: str, password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    password_hash = await run_hashing(hash_password, password)
    if not await users.set_password(username, password_hash):
        raise NotFound(f"no user named {username!r}")


async def create_client(
    *, clients: ClientStore, role: str, client_id: str | None = None, description: str = ""
) -> NewClient:
    client_id = client_id or f"client-{uuid.uuid4().hex[:12]}"
    _check_name("client id", client_id)
    _check_role(role)
    secret = generate_secret(32)
    secret_hash = await run_hashing(hash_password, secret)
    await clients.create(client_id=client_id, secret_hash=secret_hash, role=role, description=description)
    return NewClient(client_id, secret, role)


async def revoke_client(*, clients: ClientStore, client_id: str) -> None:
    if not await clients.revoke(client_id):
        raise NotFound(f"no client with id {client_id!r}")


async def list_clients(*, clients: ClientStore) -> list[ClientRecord]:
    return await clients.list()
