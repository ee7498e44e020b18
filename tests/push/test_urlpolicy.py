"""The webhook SSRF policy, with an injected resolver (no DNS)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

import pytest

from genesis.errors import InvalidInput
from genesis.push.urlpolicy import (
    Destination,
    UrlPolicy,
    UrlRefused,
    address_refusal,
    parse_webhook_url,
    resolve_destination,
)

OPEN = UrlPolicy()


def resolver_for(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]
    return resolve


def check(url: str, policy: UrlPolicy = OPEN, **table: list[str]) -> Destination:
    names = {k.replace("_", "."): v for k, v in table.items()}
    return asyncio.run(resolve_destination(url, policy, resolver_for(names)))


def test_a_public_https_url_passes_with_every_address_it_resolves_to() -> None:
    dest = check("https://hooks.example.com/in?x=1", hooks_example_com=["93.184.216.34", "2606:2800:220:1::1"])
    assert dest.url.host == "hooks.example.com" and dest.url.port == 443 and dest.url.target == "/in?x=1"
    assert [str(a) for a in dest.addresses] == ["93.184.216.34", "2606:2800:220:1::1"]


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",  # noqa: S104 - an address under test, not a bind
    "224.0.1.1", "240.0.0.1", "255.255.255.255", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fec0::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:8.8.8.8",
    "64:ff9b::7f00:1", "2002:7f00:1::1", "2001:0:4136:e378::1",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None
    with pytest.raises(UrlRefused, match="resolves to"):
        check("https://evil.example/", evil_example=[address])


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(UrlRefused, match=r"169\.254\.169\.254"):
        check("https://mixed.example/", mixed_example=["93.184.216.34", "169.254.169.254"])


@pytest.mark.parametrize(("url", "fragment"), [
    ("http://hooks.example.com/", "https://"),
    ("ftp://hooks.example.com/", "https://"),
    ("https://user:pw@hooks.example.com/", "user name"),
    ("https://hooks.example.com@evil.example/", "user name"),
    ("https://hooks.example.com/#frag", "fragment"),
    ("https:///path", "names a host"),
    ("https://hooks.exa mple.com/", "whitespace"),
    ("https://hooks.example.com\\@evil/", "backslash"),
    ("https://hööks.example/", "xn--"),
    ("https://hooks.example.com:0/", "port"),
    ("https://hooks.example.com:99999/", "valid URL"),
    ("https://" + "a" * 2100 + ".com/", "characters"),
])
def test_malformed_or_forbidden_urls_are_refused_before_any_lookup(url: str, fragment: str) -> None:
    with pytest.raises(UrlRefused, match=fragment):
        parse_webhook_url(url, OPEN)


def test_ip_literals_are_checked_like_resolved_addresses() -> None:
    assert [str(a) for a in check("https://93.184.216.34:8443/x").addresses] == ["93.184.216.34"]
    for url in ("https://127.0.0.1/", "https://[::1]/", "https://[::ffff:10.0.0.1]/", "https://2130706433/"):
        with pytest.raises(UrlRefused):
            check(url, **{"2130706433": ["127.0.0.1"]})


def test_an_unresolvable_host_is_refused_with_a_clear_message() -> None:
    with pytest.raises(UrlRefused, match="does not resolve"):
        check("https://nowhere.example/")


def test_the_allow_list_admits_loopback_and_http_for_tests_and_private_deployments() -> None:
    local = UrlPolicy.allowing(networks=["127.0.0.1/32"])
    assert [str(a) for a in check("http://127.0.0.1:8080/hook", local).addresses] == ["127.0.0.1"]
    with pytest.raises(UrlRefused, match=r"resolves to 127\.0\.0\.2"):
        check("https://127.0.0.2:8080/hook", local)  # outside the allowed network
    with pytest.raises(UrlRefused, match="https://"):
        check("http://127.0.0.2:8080/hook", local)
    by_name = UrlPolicy.allowing(hosts=["receiver.internal"])
    assert check("http://receiver.internal/", by_name, receiver_internal=["10.0.0.5"]).url.scheme == "http"
    with pytest.raises(UrlRefused, match="https://"):
        check("http://elsewhere.example/", local, elsewhere_example=["93.184.216.34"])  # public, but http
    with pytest.raises(InvalidInput, match="not a network"):
        UrlPolicy.allowing(networks=["localhost"])
