"""Where webhooks may go: the SSRF policy for endpoint URLs, checked at registration and before every attempt.

* ``https`` only; ``http`` only for an allow-listed host or network (tests, private deployments).
* No user info, no fragment, no whitespace or control characters; an ASCII host name
  (IDNs in their ``xn--`` form) or an IP literal.
* Every A/AAAA address of the host must be public: loopback, private, link-local (so the
  cloud metadata address 169.254.169.254), shared address space (CGNAT 100.64.0.0/10),
  unspecified, reserved, multicast, IPv4-mapped IPv6, NAT64 (64:ff9b::/96, 64:ff9b:1::/48),
  6to4 and Teredo addresses are refused, unless the address is in an allow-listed network
  or the host name itself is allow-listed.
* The sender connects to the very addresses checked here (see
  ``genesis.services.webhook_sender``), so a DNS answer that changes between the check and
  the connection (rebinding) cannot redirect it.

The resolver is injectable: tests check the policy without DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from genesis.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_URL_LENGTH: Final = 2048
_HOST_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_REFUSED_V6: Final = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16",
                                                              "2001::/32"))


class UrlRefused(InvalidInput):
    """The URL breaks the webhook URL policy (the message says which rule)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA), through the system resolver."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """The allow-list: hosts (exact names) and networks trusted despite the rules above."""

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, hosts: Iterable[str] = (), networks: Iterable[str] = ()) -> UrlPolicy:
        """A policy from strings, e.g. ``UrlPolicy.allowing(networks=["127.0.0.1/32"])``.

        Raises:
            InvalidInput: a network that is not a CIDR.
        """
        try:
            nets = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip())
        except ValueError as exc:
            raise InvalidInput(f"not a network: {exc}") from None
        return cls(frozenset(h.strip().lower().rstrip(".") for h in hosts if h.strip()), nets)

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allow_networks)


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    """A URL that passed the syntax rules."""

    url: str
    scheme: str
    host: str  # lower case, no trailing dot; an IP literal without brackets
    port: int
    target: str  # path and query, as sent in the request line
    literal: IPAddress | None  # the host when it is an IP literal


@dataclass(frozen=True, slots=True)
class Destination:
    """A URL and the addresses it may be delivered to, all checked."""

    url: WebhookUrl
    addresses: tuple[IPAddress, ...]


def parse_webhook_url(url: str, policy: UrlPolicy) -> WebhookUrl:
    """Check the syntax rules (no DNS): what a registration checks first.

    Raises:
        UrlRefused: naming the rule broken.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"a webhook URL has 1-{MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        raise UrlRefused("a webhook URL has no whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("a webhook URL starts with https://")
    if "@" in parts.netloc:
        raise UrlRefused("a webhook URL has no user name or password")
    if parts.fragment or url.endswith("#"):
        raise UrlRefused("a webhook URL has no fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("a webhook URL names a host")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if not set(host) <= _HOST_CHARS or ".." in host:
            raise UrlRefused("a webhook host is an ASCII name (IDNs in their xn-- form) or an IP address") from None
    if port == 0:
        raise UrlRefused("a webhook URL's port is 1-65535")
    if scheme == "http" and not _http_allowed(host, literal, policy):
        raise UrlRefused("a webhook URL starts with https:// (http only for allow-listed hosts)")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookUrl(url, scheme, host, port or (443 if scheme == "https" else 80), target, literal)


def address_refusal(address: IPAddress) -> str | None:
    """Why an address may not receive webhooks (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if any(address in net for net in _REFUSED_V6):
            return "a NAT64, 6to4 or Teredo address"
        if address.is_site_local:
            return "a site-local address"
    for name, flag in (("a loopback", address.is_loopback), ("a link-local", address.is_link_local),
                       ("a multicast", address.is_multicast), ("an unspecified", address.is_unspecified),
                       ("a private", address.is_private), ("a reserved", address.is_reserved)):
        if flag:
            return f"{name} address"
    if not address.is_global:  # e.g. 100.64.0.0/10, shared address space, neither private nor global
        return "not a public address"
    return None


async def resolve_destination(url: str, policy: UrlPolicy, resolver: Resolver = system_resolver) -> Destination:
    """Check every rule, resolving the host: what the sender does before each attempt.

    Raises:
        UrlRefused: a rule is broken, or the host does not resolve.
    """
    parsed = parse_webhook_url(url, policy)
    if parsed.literal is not None:
        found: Sequence[str] = [str(parsed.literal)]
    else:
        try:
            found = await resolver(parsed.host, parsed.port)
        except (OSError, UnicodeError) as exc:
            raise UrlRefused(f"the webhook host {parsed.host!r} does not resolve ({type(exc).__name__})") from None
    addresses = tuple(dict.fromkeys(ipaddress.ip_address(a.split("%", 1)[0]) for a in found))
    if not addresses:
        raise UrlRefused(f"the webhook host {parsed.host!r} does not resolve")
    if parsed.host not in policy.allow_hosts:
        for address in addresses:
            reason = None if policy.allows_address(address) else address_refusal(address)
            if reason is not None:
                raise UrlRefused(f"the webhook host {parsed.host!r} resolves to {address}, {reason}")
        if parsed.scheme == "http" and not all(policy.allows_address(a) for a in addresses):
            raise UrlRefused("a webhook URL starts with https:// (http only for allow-listed hosts)")
    return Destination(parsed, addresses)


def _http_allowed(host: str, literal: IPAddress | None, policy: UrlPolicy) -> bool:
    if host in policy.allow_hosts:
        return True
    if literal is not None:
        return policy.allows_address(literal)
    return bool(policy.allow_networks)  # decided per address once resolved
