"""Administration of users and machine clients, and of their sessions (shared by the CLI and the API).

Every change that should end what a principal holds - a password change, a disable, a role change, a
client's revocation, "end sessions" - bumps the principal's token generation in the same statement as
the change, so every access and refresh token issued before it is refused from the next request on, on
every worker; the session rows are then marked ended so that listings tell the truth.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from genesis.errors import InvalidInput, NotFound
from genesis.security.passwords import generate_secret, hash_password, password_problem, run_hashing
from genesis.security.scopes import ROLES
from genesis.storage.protocols import ClientRecord, ClientStore, SessionRecord, TokenStore, UserRecord, UserStore
from genesis.timeutil import now_us

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
NAME_RULE = "1-64 characters of letters, digits and . _ @ -, starting with a letter or digit"


@dataclass(frozen=True, slots=True)
class NewClient:
    client_id: str
    client_secret: str  # shown once; only its hash is stored
    role: str


def _check_name(kind: str, name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):  # fullmatch: a trailing newline is not part of a name
        raise InvalidInput(f"{kind} must be {NAME_RULE}")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role; choose one of {', '.join(ROLES)}")


async def create_user(*, users: UserStore, username: str, role: str, password: str) -> UserRecord:
    _check_name("username", username)
    _check_role(role)
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    password_hash = await run_hashing(hash_password, password)
    return await users.create(username=username, password_hash=password_hash, role=role)


async def set_user_disabled(*, users: UserStore, tokens: TokenStore, username: str, disabled: bool) -> int:
    """Disable (ending every session, for good) or enable a user; how many sessions were ended."""
    if not await users.set_disabled(username, disabled):
        raise NotFound("no such user")
    return await tokens.revoke_sessions(f"user:{username}", reason="disabled") if disabled else 0


async def set_user_password(*, users: UserStore, tokens: TokenStore, username: str, password: str) -> int:
    """Set a user's password and end every session opened with the old one; how many were ended."""
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    password_hash = await run_hashing(hash_password, password)
    if not await users.set_password(username, password_hash):
        raise NotFound("no such user")
    return await tokens.revoke_sessions(f"user:{username}", reason="password_changed")


async def set_user_role(*, users: UserStore, tokens: TokenStore, username: str, role: str) -> int:
    """Give a user another role and end every session opened under the old one; how many were ended."""
    _check_role(role)
    if not await users.set_role(username, role):
        raise NotFound("no such user")
    return await tokens.revoke_sessions(f"user:{username}", reason="role_changed")


async def end_user_sessions(*, users: UserStore, tokens: TokenStore, username: str) -> int:
    """End every access and refresh token of a user at once; how many sessions were running."""
    if not await users.end_sessions(username):
        raise NotFound("no such user")
    return await tokens.revoke_sessions(f"user:{username}", reason="ended")


async def end_own_sessions(*, users: UserStore, clients: ClientStore, tokens: TokenStore, subject: str) -> int:
    """A principal ends all of its own sessions and tokens (the one it calls with included)."""
    kind, _, name = subject.partition(":")
    ended = await (users.end_sessions(name) if kind == "user" else clients.end_sessions(name))
    if not ended:
        raise NotFound("no such principal")
    return await tokens.revoke_sessions(subject, reason="ended_by_owner")


async def list_user_sessions(*, users: UserStore, tokens: TokenStore, username: str) -> list[SessionRecord]:
    """A user's running sessions, oldest first."""
    if await users.get(username) is None:
        raise NotFound("no such user")
    return await tokens.list_sessions(f"user:{username}", active_at_us=now_us())


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
    """Revoke a client: its tokens stop working at once and re-enabling is impossible."""
    if not await clients.revoke(client_id):
        raise NotFound("no such client")


async def list_clients(*, clients: ClientStore) -> list[ClientRecord]:
    return await clients.list()
