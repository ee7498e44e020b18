"""Login throttling that slows guessers without letting them lock anyone out (OWASP ASVS V6/2.2.1, NIST 800-63B 5.2.2).

Four counters, all keyed by the lower-cased account name whether or not the account exists (throttling reveals
nothing about which names are real):

* **per address** - attempts from one address across every account (password spraying): a plain rate limit;
* **per account and address** - failures of one account from one address: that pair alone is refused for a while;
* **per account, growing delays** - past a number of failures in the last hour, from whatever addresses, each
  further attempt must wait 1 s, 2 s, 4 s ... after the previous failure, up to a cap. The owner is slowed, never
  locked out for an hour, and an address the account logged in from successfully in the last days is exempt, so
  strangers failing elsewhere do not slow the owner at all;
* **per account, hard cap** - at most 100 failures an hour, whatever the addresses (NIST's ceiling). The delays keep
  strangers well under it; only guesses from the owner's known addresses could reach it.

A success clears the pair's failures and remembers the address; it does not reset the account-wide count (a guesser
must not profit from the owner logging in).
"""

from __future__ import annotations

from dataclasses import dataclass

from genesis.errors import RateLimited
from genesis.services.limiter import Limiter

HARD_CAP_PER_HOUR = 100


class LoginThrottled(RateLimited):
    """Too many login attempts for an account or from an address."""

    code = "login-throttled"


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """The numbers (each a ``GENESIS_LOGIN_*`` setting; see docs/SECURITY.md)."""

    attempts_per_address_per_minute: int = 30
    failures_per_account_and_address: int = 10  # per PAIR_WINDOW
    delay_after_failures_per_hour: int = 20
    max_delay_seconds: int = 60
    known_address_days: int = 30

    def delay_after(self, failures: int) -> int:
        """Seconds an unknown address waits after the latest failure, given the account's failures in the hour."""
        excess = failures - self.delay_after_failures_per_hour
        if excess < 0:
            return 0
        return min(1 << min(excess, 30), self.max_delay_seconds)


PAIR_WINDOW = "15 minutes"


class LoginGuard:
    """Decides before each login attempt, and counts its outcome after."""

    def __init__(self, limiter: Limiter, policy: LoginPolicy) -> None:
        self._limiter = limiter
        self.policy = policy
        self._address_limit = f"{policy.attempts_per_address_per_minute}/minute"
        self._pair_limit = f"{policy.failures_per_account_and_address} per {PAIR_WINDOW}"
        self._account_limit = f"{HARD_CAP_PER_HOUR}/hour"

    async def before_attempt(self, *, account: str, address: str) -> None:
        """Count the attempt against the address, then refuse it if the account may not be tried from there now.

        Raises:
            LoginThrottled: with the seconds to wait (``Retry-After``).
        """
        account = account.lower()
        by_address = await self._limiter.hit(self._address_limit, "login-ip", address)
        if not by_address.allowed:
            raise LoginThrottled("too many login attempts from this address", retry_after=by_address.reset_after)
        pair = await self._limiter.peek(self._pair_limit, "login-fail-pair", account, address)
        if not pair.allowed:
            raise LoginThrottled("too many failed logins for this account from this address",
                                 retry_after=pair.reset_after)
        total = await self._limiter.peek(self._account_limit, "login-fail", account)
        if not total.allowed:
            raise LoginThrottled("too many failed logins for this account", retry_after=total.reset_after)
        if await self._known(account, address):
            return
        wait = await self._limiter.marked_for(f"login-wait/{account}")
        if wait:
            raise LoginThrottled("failed logins for this account are being slowed down; retry later",
                                 retry_after=wait)

    async def failed(self, *, account: str, address: str) -> None:
        """Count a failure; past the threshold, make unknown addresses wait before the next attempt."""
        account = account.lower()
        await self._limiter.hit(self._pair_limit, "login-fail-pair", account, address)
        total = await self._limiter.hit(self._account_limit, "login-fail", account)
        delay = self.policy.delay_after(total.limit - total.remaining)
        if delay:
            await self._limiter.mark(f"login-wait/{account}", delay)

    async def succeeded(self, *, account: str, address: str) -> None:
        """Clear the pair's failures and remember the address as the account's own."""
        account = account.lower()
        await self._limiter.clear(self._pair_limit, "login-fail-pair", account, address)
        await self._limiter.mark(f"login-known/{account}/{address}", self.policy.known_address_days * 86_400)

    async def _known(self, account: str, address: str) -> bool:
        return await self._limiter.marked_for(f"login-known/{account}/{address}") > 0
