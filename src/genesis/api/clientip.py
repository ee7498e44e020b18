"""The client's address, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddressResolver:
    """Resolves the real client IP of an ASGI request."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """Walk X-Forwarded-For from the right, skipping trusted proxies.

        The first hop that is not a trusted proxy is the client. A peer that is
        not trusted is the client itself, whatever the header claims.
        """
        peer = peer or "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # garbage in the header: fall back to the proxy's address
        return hops[0] if hops else peer
