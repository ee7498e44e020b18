"""Administration over HTTP: users and machine clients (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from genesis.api.deps import RecordIntent, RuntimeDep, allow
from genesis.api.problems import NO_STORE
from genesis.api.request_audit import request_audit
from genesis.api.routers.auth import session_view
from genesis.api.schemas import AUTHED_ERRORS, SessionRead, SessionsEnded, Strict, problem_responses
from genesis.security.scopes import ROLES
from genesis.services import accounts
from genesis.services.auth import Principal

router = APIRouter(tags=["admin"])
Admin = Annotated[Principal, allow("admin", limit="default")]
# A closed set, published as an enum (clients get a typed choice; anything else is a 422 naming the field).
RoleName = Annotated[str, Field(json_schema_extra={"enum": list(ROLES)}, pattern="^(" + "|".join(ROLES) + ")$",
                                description="One of the roles of the README's table.")]
NamePattern = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
Username = Annotated[str, Path(min_length=1, max_length=64, pattern=NamePattern, description="A username.")]


class UserRead(BaseModel):
    username: str
    role: str
    disabled: bool


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=64, pattern=NamePattern)
    role: RoleName
    password: str = Field(min_length=8, max_length=256)


class ClientCreate(Strict):
    client_id: str | None = Field(None, min_length=1, max_length=64, pattern=NamePattern)
    role: RoleName
    description: str = Field("", max_length=255)


class ClientCreated(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; only its hash is stored.")
    role: str


class ClientRead(BaseModel):
    client_id: str
    role: str
    revoked: bool
    description: str


@router.get("/users", name="admin.user.list", response_model=list[UserRead], responses=AUTHED_ERRORS)
async def list_users(_: Admin, runtime: RuntimeDep) -> list[UserRead]:
    """List users."""
    return [UserRead(username=u.username, role=u.role, disabled=u.disabled) for u in await runtime.users.list()]


@router.post("/users", name="admin.user.create", status_code=201, response_model=UserRead,
             responses={**AUTHED_ERRORS, **problem_responses(409, 413)})
async def create_user(
    body: UserCreate, request: Request, _: Admin, __: RecordIntent, runtime: RuntimeDep
) -> UserRead:
    """Create a user."""
    request_audit(request).metadata.update({"target": body.username, "role": body.role})
    user = await accounts.create_user(users=runtime.users, username=body.username, role=body.role,
                                      password=body.password)
    return UserRead(username=user.username, role=user.role, disabled=user.disabled)


@router.post("/clients", name="admin.client.create", status_code=201, response_model=ClientCreated,
             responses={**AUTHED_ERRORS, **problem_responses(409, 413)})
async def create_client(
    body: ClientCreate, request: Request, response: Response, _: Admin, __: RecordIntent, runtime: RuntimeDep
) -> ClientCreated:
    """Create a machine client; the secret is in this response only."""
    response.headers.update(NO_STORE)  # the secret must not be kept by any cache
    new = await accounts.create_client(clients=runtime.clients, role=body.role, client_id=body.client_id,
                                       description=body.description)
    request_audit(request).metadata.update({"target": new.client_id, "role": new.role})
    return ClientCreated(client_id=new.client_id, client_secret=new.client_secret, role=new.role)


@router.get("/clients", name="admin.client.list", response_model=list[ClientRead], responses=AUTHED_ERRORS)
async def list_clients(_: Admin, runtime: RuntimeDep) -> list[ClientRead]:
    """List machine clients (never their secrets)."""
    return [ClientRead(client_id=c.client_id, role=c.role, revoked=c.revoked, description=c.description)
            for c in await runtime.clients.list()]


@router.get("/users/{name}/sessions", name="admin.user.sessions", response_model=list[SessionRead],
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def list_sessions(name: Username, _: Admin, runtime: RuntimeDep) -> list[SessionRead]:
    """A user's running sessions (one per login), oldest first."""
    found = await accounts.list_user_sessions(users=runtime.users, tokens=runtime.tokens, username=name)
    return [session_view(s) for s in found]


@router.delete("/users/{name}/sessions", name="admin.user.end_sessions", response_model=SessionsEnded,
               responses={**AUTHED_ERRORS, **problem_responses(404)})
async def end_sessions(
    name: Username, request: Request, _: Admin, __: RecordIntent, runtime: RuntimeDep
) -> SessionsEnded:
    """End every session and token of a user at once, on every worker."""
    request_audit(request).metadata["target"] = name
    ended = await accounts.end_user_sessions(users=runtime.users, tokens=runtime.tokens, username=name)
    request_audit(request).metadata["sessions_ended"] = ended
    return SessionsEnded(ended=ended)
