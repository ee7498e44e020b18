"""Authentication use cases: OAuth2 grants, token verification, revocation, bootstrap."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from genesis.errors import GenesisError, RateLimited, Unauthenticated
from genesis.security.passwords import (
    generate_secret,
    hash_password,
    run_hashing,
    verify_and_update_password,
)
from genesis.security.scopes import grant, scopes_for
from genesis.security.tokens import ACCESS_TYPE, REFRESH_TYPE, TokenClaims, TokenCodec
from genesis.services.limiter import Limiter
from genesis.storage.protocols import ClientStore, PrincipalStore, TokenStore, UserStore

log = logging.getLogger("genesis.auth")

PrincipalKind = Literal["user", "client"]


class OAuthError(GenesisError):
    """An RFC 6749 section 5.2 error from the token endpoint (``invalid_client`` is a 401, the others 400)."""

    title = "OAuth2 error"
    exit_code = 7

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.code = error.replace("_", "-")
        self.http_status = 401 if error == "invalid_client" else 400


class LoginThrottled(RateLimited):
    """Too many login attempts for an account or from an address."""

    code = "login-throttled"


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


def subject_of(kind: PrincipalKind, name: str) -> str:
    return f"{kind}:{name}"


class AuthService:
    """Grants, verifies and revokes tokens for users and machine clients."""

    def __init__(
        self, *, users: UserStore, clients: ClientStore, tokens: TokenStore, principals: PrincipalStore,
        codec: TokenCodec,
        limiter: Limiter, access_ttl_seconds: int, refresh_ttl_seconds: int,
        failures_per_account_per_hour: int, attempts_per_ip_per_minute: int,
    ) -> None:
        self.users, self.clients, self.tokens, self.codec = users, clients, tokens, codec
        self.principals = principals
        self._limiter = limiter
        self._access_ttl = access_ttl_seconds
        self._refresh_ttl = refresh_ttl_seconds
        self._account_limit = f"{failures_per_account_per_hour}/hour"
        self._ip_limit = f"{attempts_per_ip_per_minute}/minute"

    # --- grants ------------------------------------------------------------
    async def password_grant(self, *, username: str, password: str, scope: str | None, source_ip: str) -> TokenGrant:
        await self._throttle(username=username, source_ip=source_ip)
        user = await self.users.get(username)
        ok, rehashed = await run_hashing(verify_and_update_password, password, user.password_hash if user else None)
        if user is None or not ok or user.disabled:
            await self._limiter.hit(self._account_limit, "login-fail", username.lower())
            # One answer for unknown user, wrong password and disabled account (no enumeration).
            raise OAuthError("invalid_grant", "invalid username or password")
        await self._limiter.clear(self._account_limit, "login-fail", username.lower())
        if rehashed is not None:  # stored under older hashing parameters: upgrade it now we know the password
            try:  # only if unchanged since we read it: a reset that landed meanwhile wins
                await self.users.upgrade_password_hash(user.username, user.password_hash, rehashed)
            except Exception as exc:  # best effort: a correct login never fails for it
                log.warning("could not upgrade the password hash of %r: %s", user.username, type(exc).__name__)
        scopes = grant(user.role, scope)
        if scopes is None:
            raise OAuthError("invalid_scope", "the requested scope exceeds the user's role")
        return await self._issue(subject_of("user", user.username), scopes, with_refresh=True)

    async def client_credentials_grant(
        self, *, client_id: str, client_secret: str, scope: str | None, source_ip: str
    ) -> TokenGrant:
        await self._throttle(username=f"client:{client_id}", source_ip=source_ip)
        client = await self.clients.get(client_id)
        ok, rehashed = await run_hashing(verify_and_update_password, client_secret,
                                         client.secret_hash if client else None)
        if client is None or not ok or client.revoked:
            await self._limiter.hit(self._account_limit, "login-fail", f"client:{client_id}".lower())
            raise OAuthError("invalid_client", "client authentication failed")
        if rehashed is not None:  # made under older hashing parameters: upgrade it (see password_grant)
            try:
                await self.clients.upgrade_secret_hash(client.client_id, client.secret_hash, rehashed)
            except Exception as exc:
                log.warning("could not upgrade the secret hash of client %r: %s", client.client_id,
                            type(exc).__name__)
        scopes = grant(client.role, scope)
        if scopes is None:
            raise OAuthError("invalid_scope", "the requested scope exceeds the client's role")
        return await self._issue(subject_of("client", client.client_id), scopes, with_refresh=False)

    async def refresh_grant(self, *, refresh_token: str, scope: str | None) -> TokenGrant:
        try:
            claims = self.codec.verify(refresh_token, token_type=REFRESH_TYPE)
        except Unauthenticated as exc:
            raise OAuthError("invalid_grant", "refresh token is invalid or expired") from exc
        record = await self.tokens.get_refresh(claims.jti)
        if record is None or record.revoked_at_us is not None:
            raise OAuthError("invalid_grant", "refresh token has been revoked")
        if not await self.tokens.mark_rotated(claims.jti):
            # A rotated token came back: someone holds a copy. Kill the whole family.
            await self.tokens.revoke_family(record.family_id)
            raise OAuthError("invalid_grant", "refresh token was already used; its family is revoked")
        principal_role = await self._active_role(claims.subject)
        if principal_role is None:
            raise OAuthError("invalid_grant", "the account is disabled or no longer exists")
        granted = set(record.scope.split()) & scopes_for(principal_role)
        if scope:
            wanted = set(scope.split())
            if not wanted <= granted:
                raise OAuthError("invalid_scope", "a refresh cannot widen the original scope")
            granted = wanted
        return await self._issue(claims.subject, tuple(sorted(granted)), with_refresh=True, family_id=record.family_id)

    async def revoke(self, *, token: str, token_type_hint: str | None = None) -> None:
        """RFC 7009: revoke a refresh or access token; unknown tokens are not an error."""
        order = (REFRESH_TYPE, ACCESS_TYPE) if token_type_hint == "refresh_token" else (ACCESS_TYPE, REFRESH_TYPE)
        for token_type in order:
            try:
                claims = self.codec.verify(token, token_type=token_type)
            except Unauthenticated:
                continue
            if token_type == REFRESH_TYPE:
                record = await self.tokens.get_refresh(claims.jti)
                if record is not None:
                    await self.tokens.revoke_family(record.family_id)
            else:
                await self.tokens.revoke_access(claims.jti, claims.expires_at * 1_000_000)
                self.codec.forget(token)
            return

    # --- verification -----------------------------------------------------
    async def authenticate(self, token: str) -> Principal:
        """The principal behind an access token; Unauthenticated if it is not usable."""
        claims: TokenClaims = self.codec.verify(token, token_type=ACCESS_TYPE)
        kind, _, name = claims.subject.partition(":")
        role, revoked = await self.principals.token_status(kind=kind, name=name, jti=claims.jti)
        if revoked:
            raise Unauthenticated("token has been revoked")
        if role is None:
            raise Unauthenticated("the account is disabled or no longer exists")
        return Principal(
            subject=claims.subject, kind="client" if kind == "client" else "user", name=name, role=role,
            scopes=claims.scopes & scopes_for(role), token_jti=claims.jti, token_expires_at=claims.expires_at,
        )

    async def recheck(self, principal: Principal, *, now: float | None = None) -> Principal:
        """The principal of a long-lived stream, checked again: its token not revoked or expired, its account active.

        Returns it with the scopes its role grants now (a role changed meanwhile narrows them).

        Raises:
            Unauthenticated: the token was revoked or has expired, or the account is disabled or gone.
        """
        if principal.token_expires_at <= (time.time() if now is None else now):
            raise Unauthenticated("token has expired")
        role, revoked = await self.principals.token_status(kind=principal.kind, name=principal.name,
                                                           jti=principal.token_jti)
        if revoked:
            raise Unauthenticated("token has been revoked")
        if role is None:
            raise Unauthenticated("the account is disabled or no longer exists")
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
    async def _throttle(self, *, username: str, source_ip: str) -> None:
        by_ip = await self._limiter.hit(self._ip_limit, "login-ip", source_ip)
        if not by_ip.allowed:
            raise LoginThrottled("too many login attempts from this address", retry_after=by_ip.reset_after)
        by_account = await self._limiter.peek(self._account_limit, "login-fail", username.lower())
        if not by_account.allowed:
            raise LoginThrottled("too many failed logins for this account", retry_after=by_account.reset_after)

    async def _active_role(self, subject: str) -> str | None:
        kind, _, name = subject.partition(":")
        if kind == "user":
            user = await self.users.get(name)
            return None if user is None or user.disabled else user.role
        if kind == "client":
            client = await self.clients.get(name)
            return None if client is None or client.revoked else client.role
        return None

    async def _issue(
        self, subject: str, scopes: tuple[str, ...], *, with_refresh: bool, family_id: str | None = None
    ) -> TokenGrant:
        access = self.codec.issue(subject=subject, scopes=scopes, ttl_seconds=self._access_ttl)
        refresh_token = None
        if with_refresh:
            family = family_id or uuid.uuid4().hex
            refresh = self.codec.issue(
                subject=subject, scopes=scopes, ttl_seconds=self._refresh_ttl, token_type=REFRESH_TYPE,
                family_id=family,
            )
            await self.tokens.add_refresh(
                jti=refresh.jti, family_id=family, subject=subject, scope=" ".join(scopes),
                expires_at_us=refresh.expires_at * 1_000_000,
            )
            refresh_token = refresh.token
        return TokenGrant(access.token, access.expires_in, " ".join(scopes), refresh_token)
