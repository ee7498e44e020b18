"""Password and client-secret hashing with argon2id (pwdlib)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# OWASP's first argon2id configuration (Password Storage Cheat Sheet): 19 MiB, 2 passes, 1 lane.
# OWASP rates it as strong as 46 MiB x 1 pass; argon2-cffi's default (64 MiB x 3 passes x 4 lanes)
# made every login hold 64 MiB, so a burst of logins could take a worker's memory by hundreds of MB.
ARGON2_MEMORY_KIB = 19_456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
_ARGON2 = Argon2Hasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM)
_HASHER = PasswordHash((_ARGON2,))
# At most one hash per core at a time: memory stays <= cores x 19 MiB whatever the login burst,
# and more threads than cores would only make every login slower.
_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
# The event loop's callers hash on threads of their own: queued logins never hold threads of the
# default executor that other work (price inserts, audit reads) needs.
_POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="genesis-hash")
P = ParamSpec("P")
R = TypeVar("R")
# Verifying against this when the user does not exist keeps the response time
# of "unknown user" close to "wrong password" (no user enumeration by timing).
# It is a hash of a random secret nobody kept, made with the hasher's default
# parameters; hashing one afresh at import cost every process ~0.3 s. Should the
# defaults change, a fresh one is made so the cost still matches real hashes.
_FIXED_DUMMY_HASH = "$argon2id$v=19$m=19456,t=2,p=1$Nb1LGN3V8XnYMG2mNLDzzw$Wfm3qe7cK0qBmqLDGb2UL8J+Pw8kqfNQgx9VpnvLB/E"
_DUMMY_HASH = (_HASHER.hash(secrets.token_urlsafe(16)) if _ARGON2.check_needs_rehash(_FIXED_DUMMY_HASH)
               else _FIXED_DUMMY_HASH)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


async def run_hashing(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a hashing function of this module on the hashing threads, with the caller's context."""
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_POOL, call)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (blocking: call from a worker thread)."""
    with _SLOTS:
        return _HASHER.hash(password)


def verify_and_update_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Check ``password``; on success with a hash made under other parameters, also a fresh hash to store.

    With no hash, spend the same time and answer ``(False, None)``. A malformed stored hash never
    authenticates and never raises.
    """
    with _SLOTS:
        if password_hash is None:
            _HASHER.verify(password, _DUMMY_HASH)
            return False, None
        try:
            return _HASHER.verify_and_update(password, password_hash)
        except Exception:  # malformed stored hash
            return False, None


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
