"""JWT access and refresh tokens (PyJWT, HS256 only).

Access tokens carry ``typ: at+jwt`` in the header (RFC 9068) and refresh tokens
``typ: rt+jwt``, so neither can stand in for the other. The algorithm list is
fixed here, never read from the token (RFC 8725 3.1). Besides the registered
claims, a token carries ``gen`` (the principal's token generation when it was
issued: a later password change, disable, role change or "end sessions" bumps it)
and, when it belongs to a session, ``fam`` (the session id).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from genesis.errors import ConfigurationError, Unauthenticated
from genesis.timeutil import now_us

ALGORITHM = "HS256"
ACCESS_TYPE = "at+jwt"
REFRESH_TYPE = "rt+jwt"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]
MIN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    scopes: frozenset[str]
    jti: str
    expires_at: int
    token_type: str
    family_id: str | None = None
    generation: int = 0


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: int
    expires_in: int


class TokenCodec:
    """Issues and verifies Genesis JWTs; caches verified claims until expiry."""

    def __init__(
        self, *, key: str | Callable[[], str], issuer: str, audience: str, leeway_seconds: int = 10,
        cache_size: int = 4096,
    ) -> None:
        """Args:
            key: the HMAC key, or a function that reads it (called once, on first use or ``check_key``).
        """
        self._key_source = key
        self._resolved: str | None = None
        if isinstance(key, str):
            self.check_key()
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._cache: OrderedDict[str, TokenClaims] = OrderedDict()
        self._cache_size = cache_size

    @property
    def _key(self) -> str:
        return self._resolved if self._resolved is not None else self.check_key()

    def check_key(self) -> str:
        """Read the key (once) and refuse one under 256 bits.

        Raises:
            ConfigurationError: the key is shorter than 32 bytes.
        """
        key = self._key_source if isinstance(self._key_source, str) else self._key_source()
        if len(key.encode()) < MIN_KEY_BYTES:
            # Refuse at start: a short key (an empty or truncated secret file, a weak GENESIS_SECRET_KEY) would let
            # anyone who guesses it mint tokens (RFC 8725 3.5: at least 256 bits for HS256).
            raise ConfigurationError(
                f"the JWT signing key is shorter than {MIN_KEY_BYTES} bytes (256 bits): set GENESIS_SECRET_KEY to a "
                "longer secret, or remove the short secret.key from the data directory to have one generated"
            )
        self._resolved = key
        return key

    def issue(
        self, *, subject: str, scopes: tuple[str, ...], ttl_seconds: int, token_type: str = ACCESS_TYPE,
        family_id: str | None = None, generation: int = 0, not_after: int | None = None,
    ) -> IssuedToken:
        """A signed token; ``not_after`` (seconds since the epoch) caps its expiry (a session's absolute end)."""
        now = now_us() // 1_000_000
        jti = uuid.uuid4().hex
        expires = now + ttl_seconds if not_after is None else min(now + ttl_seconds, not_after)
        claims: dict[str, Any] = {
            "iss": self._issuer, "aud": self._audience, "sub": subject, "iat": now, "nbf": now,
            "exp": expires, "jti": jti, "scope": " ".join(scopes), "gen": generation,
        }
        if family_id is not None:
            claims["fam"] = family_id
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"typ": token_type})
        return IssuedToken(token, jti, expires, max(expires - now, 0))

    def verify(self, token: str, *, token_type: str = ACCESS_TYPE) -> TokenClaims:
        """Verify signature, type and registered claims; raise Unauthenticated otherwise."""
        cached = self._cache.get(token)
        now = now_us() // 1_000_000
        if cached is not None and cached.token_type == token_type:
            if now <= cached.expires_at + self._leeway:
                return cached
            self._cache.pop(token, None)
        try:
            decoded = jwt.api_jwt.decode_complete(
                token, self._key, algorithms=[ALGORITHM], audience=self._audience, issuer=self._issuer,
                leeway=self._leeway, options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("token is not valid yet") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("token is invalid") from exc
        header, payload = decoded["header"], decoded["payload"]
        if header.get("typ") != token_type:
            raise Unauthenticated("token is of the wrong type")
        if payload.get("aud") != self._audience:
            # PyJWT accepts a list that merely contains our audience; a token meant for others too is not ours.
            raise Unauthenticated("token is invalid")
        subject, jti, scope = payload.get("sub"), payload.get("jti"), payload.get("scope", "")
        family, generation = payload.get("fam"), payload.get("gen", 0)
        if not isinstance(subject, str) or not isinstance(jti, str) or not isinstance(scope, str):
            raise Unauthenticated("token is invalid")
        if (family is not None and not isinstance(family, str)) or type(generation) is not int or generation < 0:
            raise Unauthenticated("token is invalid")
        claims = TokenClaims(
            subject=subject, scopes=frozenset(scope.split()), jti=jti, expires_at=int(payload["exp"]),
            token_type=token_type, family_id=family, generation=generation,
        )
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def forget(self, token: str) -> None:
        """Drop a token from the verification cache (after revocation)."""
        self._cache.pop(token, None)
