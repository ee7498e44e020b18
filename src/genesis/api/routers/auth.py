"""OAuth2 token endpoint (password, client_credentials, refresh_token) and revocation (RFC 7009)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import unquote

import orjson
from fastapi import APIRouter, Form, Header, Request, Response
from pydantic import BaseModel

from genesis.api.deps import RecordIntent, RuntimeDep, allow, rate_limits
from genesis.api.problems import NO_STORE
from genesis.api.request_audit import request_audit
from genesis.api.schemas import AUTHED_ERRORS, SessionRead, SessionsEnded, TokenResponse, problem_responses
from genesis.services import accounts
from genesis.services.auth import OAuthError, Principal, TokenGrant
from genesis.storage.protocols import SessionRecord
from genesis.timeutil import now_us, rfc3339

router = APIRouter(tags=["auth"])

FormStr = Annotated[str | None, Form(max_length=4096)]


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 2.3.1): form-urlencoded id and secret in HTTP Basic."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "malformed Basic credentials") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials")
    return unquote(client_id), unquote(secret)


def _token_response(grant: TokenGrant) -> Response:
    body = TokenResponse(
        access_token=grant.access_token, expires_in=grant.expires_in, scope=grant.scope,
        refresh_token=grant.refresh_token,
    )
    return Response(orjson.dumps(body.model_dump(exclude_none=True)), media_type="application/json", headers=NO_STORE)


@router.post(
    "/token", name="auth.token.issue", response_model=TokenResponse,
    responses={400: {"description": "OAuth2 error (invalid_request, invalid_grant, invalid_scope, ...)"},
               401: {"description": "OAuth2 invalid_client"},
               **problem_responses(413, 422, 429, 503)},
)
async def issue_token(
    request: Request, runtime: RuntimeDep,
    grant_type: FormStr = None, username: FormStr = None, password: FormStr = None, scope: FormStr = None,
    client_id: FormStr = None, client_secret: FormStr = None, refresh_token: FormStr = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Issue tokens: OAuth2 password, client_credentials and refresh_token grants (form fields)."""
    record = request_audit(request)
    record.audit = True
    record.metadata["grant_type"] = grant_type
    await rate_limits(request).enforce("token", f"ip:{record.source_ip}")
    try:
        if grant_type == "password":
            if not username or password is None:
                raise OAuthError("invalid_request", "the password grant needs username and password")
            record.actor = f"user:{username[:64]}"
            grant = await runtime.auth.password_grant(
                username=username, password=password, scope=scope, source_ip=record.source_ip,
                user_agent=record.user_agent,
            )
        elif grant_type == "client_credentials":
            basic = _basic_credentials(authorization)
            cid, secret = basic if basic else (client_id, client_secret)
            if not cid or secret is None:
                raise OAuthError("invalid_client", "client authentication failed")
            record.actor = f"client:{cid[:64]}"
            grant = await runtime.auth.client_credentials_grant(
                client_id=cid, client_secret=secret, scope=scope, source_ip=record.source_ip
            )
        elif grant_type == "refresh_token":
            if not refresh_token:
                raise OAuthError("invalid_request", "the refresh_token grant needs refresh_token")
            record.action = "auth.token.refresh"
            grant = await runtime.auth.refresh_grant(refresh_token=refresh_token, scope=scope)
        elif not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        else:
            raise OAuthError("unsupported_grant_type", "supported: password, client_credentials, refresh_token")
    except OAuthError as exc:
        record.action = "auth.login.failed" if grant_type in ("password", "client_credentials") else (
            record.action or "auth.token.failed")
        if exc.subject:  # the server knows whose token it was: that is who the trail names
            record.actor = exc.subject
        if exc.reason == "reuse":
            record.action = "auth.token.reuse_detected"
        record.metadata["error"] = exc.error
        if exc.reason:
            record.metadata["reason"] = exc.reason
        raise
    record.actor = grant.subject
    record.metadata["scope"] = grant.scope
    if grant.session_id:
        record.metadata["session"] = grant.session_id
    return _token_response(grant)


@router.post("/token/revoke", name="auth.token.revoke", response_class=Response, responses={
    200: {"description": "Revoked, or not a token this server knows (RFC 7009 2.2): an empty body"},
    **problem_responses(413, 422, 429, 503)})
async def revoke_token(
    request: Request, runtime: RuntimeDep,
    token: Annotated[str, Form(min_length=1, max_length=4096)], token_type_hint: FormStr = None,
) -> Response:
    """Revoke an access or refresh token (RFC 7009); unknown tokens also answer 200."""
    record = request_audit(request)
    record.audit = True
    await rate_limits(request).enforce("token", f"ip:{record.source_ip}")
    revoked = await runtime.auth.revoke(token=token, token_type_hint=token_type_hint)
    if revoked is not None:
        record.actor = revoked.subject
        # (key names with "token" in them are redacted by design: "revoked" says what kind of token it was)
        record.metadata.update({"revoked": revoked.token_type, "session": revoked.session_id})
    return Response(status_code=200, headers=NO_STORE)


class Me(BaseModel):
    subject: str
    kind: str
    role: str
    scopes: list[str]


@router.get("/me", name="auth.me", response_model=Me, responses=AUTHED_ERRORS)
async def me(principal: Annotated[Principal, allow(limit="default")]) -> Me:
    """Who the bearer token belongs to, and its scopes."""
    return Me(subject=principal.subject, kind=principal.kind, role=principal.role, scopes=sorted(principal.scopes))


def session_view(session: SessionRecord, current: str | None = None) -> SessionRead:
    return SessionRead(
        id=session.id, scope=session.scope, created_at=rfc3339(session.created_at_us),
        expires_at=rfc3339(session.expires_at_us), last_used_at=rfc3339(session.last_used_at_us),
        source_ip=session.source_ip, user_agent=session.user_agent, current=session.id == current,
    )


@router.get("/me/sessions", name="auth.sessions.list", response_model=list[SessionRead], responses=AUTHED_ERRORS)
async def my_sessions(
    principal: Annotated[Principal, allow(limit="default")], runtime: RuntimeDep
) -> list[SessionRead]:
    """Your running sessions (one per login), oldest first."""
    found = await runtime.tokens.list_sessions(principal.subject, active_at_us=now_us())
    return [session_view(s, principal.session_id) for s in found]


@router.delete("/me/sessions", name="auth.sessions.end", response_model=SessionsEnded,
               responses={**AUTHED_ERRORS, **problem_responses(404)})
async def end_my_sessions(
    request: Request, principal: Annotated[Principal, allow(limit="default")], _: RecordIntent, runtime: RuntimeDep
) -> SessionsEnded:
    """End all of your sessions and tokens at once, the one making this request included."""
    ended = await accounts.end_own_sessions(users=runtime.users, clients=runtime.clients, tokens=runtime.tokens,
                                            subject=principal.subject)
    request_audit(request).metadata["sessions_ended"] = ended
    return SessionsEnded(ended=ended)
