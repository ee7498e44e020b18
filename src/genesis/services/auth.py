"""Authentication use cases: OAuth2 grants, token verification, revocation, bootstrap."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from genesis.audit.redaction import get_redactor
from genesis.errors import GenesisError, Unauthenticated
from genesis.security.passwords import (
    generate_secret,
    hash_password,
    run_hashing,
    verify_and_update_password,
)
from genesis.security.scopes import grant, scopes_for
from genesis.security.tokens import ACCESS_TYPE, REFRESH_TYPE, TokenClaims, TokenCodec
from genesis.services.limiter import Limiter
from genesis.services.login_guard import LoginGuard, LoginPolicy
from genesis.services.login_guard import LoginThrottled as LoginThrottled  # re-exported: its home before the guard
from genesis.storage.protocols import ClientStore, PrincipalStore, SessionRecord, TokenStore, UserStore
from genesis.timeutil import now_us

log = logging.getLogger("genesis.auth")

PrincipalKind = Literal["user", "client"]


class OAuthError(GenesisError):
    """An RFC 6749 section 5.2 error from the token endpoint (``invalid_client`` is a 401, the others 400)."""

    title = "OAuth2 error"
    exit_code = 7

    def __init__(self, error: str, description: str, *, subject: str | None = None, reason: str | None = None) -> None:
        """Args:
            subject: whose token it was, when the server can tell (the audit trail's actor; never sent).
            reason: a short word for the trail (``reuse``, ``session_ended``...); never sent either.
        """
        super().__init__(description)
        self.error = error
        self.code = error.replace("_", "-")
        self.http_status = 401 if error == "invalid_client" else 400
        self.subject = subject
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user or a machine client, with the scopes of its token."""

    subject: str  # "user:alice" or "client:ingest-bot"
    kind: PrincipalKind
    name: str
    role: str
    scopes: frozenset[str]
    token_jti: str
    token_expires_at: int
    session_id: str | None = None
    token_generation: int = 0  # the principal's token generation when the token was issued

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    token_type: str = "bearer"
    subject: str = ""
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Revocation:
    """What ``AuthService.revoke`` ended: a whole session, or one access token."""

    subject: str
    session_id: str | None
    token_type: str


def subject_of(kind: PrincipalKind, name: str) -> str:
    return f"{kind}:{name}"


class AuthService:
    """Grants, verifies and revokes tokens for users and machine clients."""

    def __init__(
        self, *, users: UserStore, clients: ClientStore, tokens: TokenStore, principals: PrincipalStore,
        codec: TokenCodec,
        limiter: Limiter, access_ttl_seconds: int, refresh_ttl_seconds: int, session_max_age_seconds: int,
        login_policy: LoginPolicy,
    ) -> None:
        self.users, self.clients, self.tokens, self.codec = users, clients, tokens, codec
        self.principals = principals
        self._limiter = limiter
        self._access_ttl = access_ttl_seconds
        self._refresh_ttl = refresh_ttl_seconds
        self._session_max_age = session_max_age_seconds
        self.login_guard = LoginGuard(limiter, login_policy)

    # --- grants ------------------------------------------------------------
    async def password_grant(
        self, *, username: str, password: str, scope: str | None, source_ip: str, user_agent: str | None = None
    ) -> TokenGrant:
        guard = self.login_guard
        await guard.before_attempt(account=username, address=source_ip)
        user = await self.users.get(username)
        ok, rehashed = await run_hashing(verify_and_update_password, password, user.password_hash if user else None)
        if user is None or not ok or user.disabled:
            await guard.failed(account=username, address=source_ip)
            # One answer for unknown user, wrong password and disabled account (no enumeration).
            raise OAuthError("invalid_grant", "invalid username or password")
        await guard.succeeded(account=username, address=source_ip)
        if rehashed is not None:  # stored under older hashing parameters: upgrade it now we know the password
            try:  # only if unchanged since we read it: a reset that landed meanwhile wins
                await self.users.upgrade_password_hash(user.username, user.password_hash, rehashed)
            except Exception as exc:  # best effort: a correct login never fails for it
                log.warning("could not upgrade the password hash of %r: %s", user.username, type(exc).__name__)
        scopes = grant(user.role, scope)
        if scopes is None:
            raise OAuthError("invalid_scope", "the requested scope exceeds the user's role")
        session = await self._start_session(subject_of("user", user.username), scopes, source_ip, user_agent)
        return await self._issue(session.subject, scopes, generation=user.token_generation, session=session)

    async def client_credentials_grant(
        self, *, client_id: str, client_secret: str, scope: str | None, source_ip: str
    ) -> TokenGrant:
        guard, account = self.login_guard, f"client:{client_id}"
        await guard.before_attempt(account=account, address=source_ip)
        client = await self.clients.get(client_id)
        ok, rehashed = await run_hashing(verify_and_update_password, client_secret,
                                         client.secret_hash if client else None)
        if client is None or not ok or client.revoked:
            await guard.failed(account=account, address=source_ip)
            raise OAuthError("invalid_client", "client authentication failed")
        await guard.succeeded(account=account, address=source_ip)
        if rehashed is not None:  # made under older hashing parameters: upgrade it (see password_grant)
            try:
                await self.clients.upgrade_secret_hash(client.client_id, client.secret_hash, rehashed)
            except Exception as exc:
                log.warning("could not upgrade the secret hash of client %r: %s", client.client_id,
                            type(exc).__name__)
        scopes = grant(client.role, scope)
        if scopes is None:
            raise OAuthError("invalid_scope", "the requested scope exceeds the client's role")
        return await self._issue(subject_of("client", client.client_id), scopes, generation=client.token_generation)

    async def refresh_grant(self, *, refresh_token: str, scope: str | None) -> TokenGrant:
        try:
            claims = self.codec.verify(refresh_token, token_type=REFRESH_TYPE)
        except Unauthenticated as exc:
            raise OAuthError("invalid_grant", "refresh token is invalid or expired") from exc
        subject = claims.subject
        record = await self.tokens.get_refresh(claims.jti)
        if record is None or record.revoked_at_us is not None:
            raise OAuthError("invalid_grant", "refresh token has been revoked", subject=subject, reason="revoked")
        session = await self.tokens.get_session(record.family_id)
        if session is None or not session.active(now_us()):
            # The absolute end of the session (GENESIS_SESSION_MAX_AGE) is not extended by rotation.
            raise OAuthError("invalid_grant", "the session has ended; log in again", subject=subject,
                             reason="session_ended")
        if not await self.tokens.mark_rotated(claims.jti):
            # A rotated token came back: someone holds a copy. Kill the whole family, its access tokens included.
            await self.tokens.revoke_family(record.family_id, reason="reuse")
            raise OAuthError("invalid_grant", "refresh token was already used; its family is revoked",
                             subject=subject, reason="reuse")
        active = await self._active(subject)
        if active is None:
            raise OAuthError("invalid_grant", "the account is disabled or no longer exists", subject=subject,
                             reason="inactive")
        role, generation = active
        if generation != claims.generation:
            raise OAuthError("invalid_grant", "the session has ended; log in again", subject=subject,
                             reason="session_ended")
        granted = set(record.scope.split()) & scopes_for(role)
        if scope:
            wanted = set(scope.split())
            if not wanted <= granted:
                raise OAuthError("invalid_scope", "a refresh cannot widen the original scope", subject=subject)
            granted = wanted
        issued = await self._issue(subject, tuple(sorted(granted)), generation=generation, session=session)
        await self.tokens.touch_session(session.id, now_us())
        return issued

    async def revoke(self, *, token: str, token_type_hint: str | None = None) -> Revocation | None:
        """RFC 7009: revoke a refresh token (ending its session) or an access token; unknown tokens are not an error.

        Returns what was revoked (None for a token this server does not know).
        """
        order = (REFRESH_TYPE, ACCESS_TYPE) if token_type_hint == "refresh_token" else (ACCESS_TYPE, REFRESH_TYPE)
        for token_type in order:
            try:
                claims = self.codec.verify(token, token_type=token_type)
            except Unauthenticated:
                continue
            if token_type == REFRESH_TYPE:
                record = await self.tokens.get_refresh(claims.jti)
                if record is None:
                    return None
                await self.tokens.revoke_family(record.family_id, reason="revoked")
                return Revocation(claims.subject, record.family_id, "refresh_token")
            await self.tokens.revoke_access(claims.jti, claims.expires_at * 1_000_000)
            self.codec.forget(token)
            return Revocation(claims.subject, claims.family_id, "access_token")
        return None

    # --- verification -----------------------------------------------------
    async def authenticate(self, token: str) -> Principal:
        """The principal behind an access token; Unauthenticated if it is not usable."""
        claims: TokenClaims = self.codec.verify(token, token_type=ACCESS_TYPE)
        kind, _, name = claims.subject.partition(":")
        role = await self._current_role(kind, name, jti=claims.jti, session_id=claims.family_id,
                                        generation=claims.generation)
        return Principal(
            subject=claims.subject, kind="client" if kind == "client" else "user", name=name, role=role,
            scopes=claims.scopes & scopes_for(role), token_jti=claims.jti, token_expires_at=claims.expires_at,
            session_id=claims.family_id, token_generation=claims.generation,
        )

    async def _current_role(self, kind: str, name: str, *, jti: str, session_id: str | None, generation: int) -> str:
        """The role of a principal whose token is still good: not revoked, its session alive, its generation current.

        Raises:
            Unauthenticated: the token was revoked, its session ended, or the account is disabled or gone.
        """
        status = await self.principals.token_status(kind=kind, name=name, jti=jti, session_id=session_id)
        if status.jti_revoked or not status.session_active:
            raise Unauthenticated("token has been revoked")
        if status.role is None:
            raise Unauthenticated("the account is disabled or no longer exists")
        if status.generation != generation:  # password, role or state changed, or sessions were ended
            raise Unauthenticated("token has been revoked")
        return status.role

    async def recheck(self, principal: Principal, *, now: float | None = None) -> Principal:
        """The principal of a long-lived stream, checked again: its token not revoked or expired, its account active.

        Returns it with the scopes its role grants now (a role changed meanwhile narrows them).

        Raises:
            Unauthenticated: the token was revoked or has expired, or the account is disabled or gone.
        """
        if principal.token_expires_at <= (time.time() if now is None else now):
            raise Unauthenticated("token has expired")
        role = await self._current_role(principal.kind, principal.name, jti=principal.token_jti,
                                        session_id=principal.session_id, generation=principal.token_generation)
        scopes = principal.scopes & scopes_for(role)
        return principal if scopes == principal.scopes else dataclasses.replace(principal, role=role, scopes=scopes)

    # --- bootstrap ---------------------------------------------------------
    async def bootstrap_admin(self, *, username: str, password: str | None) -> str | None:
        """Create the first admin when no user exists; return a generated password, if any."""
        if await self.users.count() > 0:
            return None
        generated = None
        if password is None:
            password = generated = generate_secret(18)
        password_hash = await run_hashing(hash_password, password)
        try:
            await self.users.create(username=username, password_hash=password_hash, role="admin")
        except GenesisError:
            return None  # another worker bootstrapped first
        return generated

    # --- internals ---------------------------------------------------------
    async def _active(self, subject: str) -> tuple[str, int] | None:
        """(role, token generation) of an active principal, None when disabled, revoked or unknown."""
        kind, _, name = subject.partition(":")
        if kind == "user":
            user = await self.users.get(name)
            return None if user is None or user.disabled else (user.role, user.token_generation)
        if kind == "client":
            client = await self.clients.get(name)
            return None if client is None or client.revoked else (client.role, client.token_generation)
        return None

    async def _start_session(
        self, subject: str, scopes: tuple[str, ...], source_ip: str, user_agent: str | None
    ) -> SessionRecord:
        now = now_us()
        agent = get_redactor().scrub(user_agent)[:512] if user_agent else None
        session = SessionRecord(
            id=uuid.uuid4().hex, subject=subject, scope=" ".join(scopes), created_at_us=now,
            expires_at_us=now + self._session_max_age * 1_000_000, last_used_at_us=now, revoked_at_us=None,
            revoked_reason=None, source_ip=source_ip[:64], user_agent=agent,
        )
        await self.tokens.add_session(session)
        return session

    async def _issue(
        self, subject: str, scopes: tuple[str, ...], *, generation: int, session: SessionRecord | None = None
    ) -> TokenGrant:
        """An access token, and with a session a refresh token too; neither outlives the session."""
        session_end = None if session is None else session.expires_at_us // 1_000_000
        family = None if session is None else session.id
        access = self.codec.issue(subject=subject, scopes=scopes, ttl_seconds=self._access_ttl, family_id=family,
                                  generation=generation, not_after=session_end)
        refresh_token = None
        if session is not None:
            refresh = self.codec.issue(
                subject=subject, scopes=scopes, ttl_seconds=self._refresh_ttl, token_type=REFRESH_TYPE,
                family_id=session.id, generation=generation, not_after=session_end,
            )
            await self.tokens.add_refresh(
                jti=refresh.jti, family_id=session.id, subject=subject, scope=" ".join(scopes),
                expires_at_us=refresh.expires_at * 1_000_000,
            )
            refresh_token = refresh.token
        return TokenGrant(access.token, access.expires_in, " ".join(scopes), refresh_token, subject=subject,
                          session_id=family)
