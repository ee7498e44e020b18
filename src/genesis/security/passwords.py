"""Password and client-secret hashing with argon2id (pwdlib)."""

from __future__ import annotations

import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_ARGON2 = Argon2Hasher()
_HASHER = PasswordHash((_ARGON2,))
# Verifying against this when the user does not exist keeps the response time
# of "unknown user" close to "wrong password" (no user enumeration by timing).
# It is a hash of a random secret nobody kept, made with the hasher's default
# parameters; hashing one afresh at import cost every process ~0.3 s. Should the
# defaults change, a fresh one is made so the cost still matches real hashes.
_FIXED_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$i2H2mAIbQGQwdHdV5QEdHw$j75v2VbrAcSkAL6EoZ3miZAOCcQFsXvIXNVjGvDQ7Q4"
_DUMMY_HASH = (_HASHER.hash(secrets.token_urlsafe(16)) if _ARGON2.check_needs_rehash(_FIXED_DUMMY_HASH)
               else _FIXED_DUMMY_HASH)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check ``password``; with no hash, spend the same time and answer False."""
    if password_hash is None:
        _HASHER.verify(password, _DUMMY_HASH)
        return False
    try:
        return _HASHER.verify(password, password_hash)
    except Exception:  # malformed stored hash: never authenticate, never crash
        return False


def generate_secret(nbytes: int = 32) -> str:
    """A random URL-safe secret (passwords for bootstrap, client secrets)."""
    return secrets.token_urlsafe(nbytes)


def password_problem(password: str) -> str | None:
    """Why ``password`` is unacceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password must be at most {MAX_PASSWORD_LENGTH} characters"
    return None
