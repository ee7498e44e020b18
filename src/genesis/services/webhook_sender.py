"""One webhook delivery attempt over HTTP: signed, SSRF-checked, bounded in time and size.

Before each attempt the URL is checked again and its host resolved (``push.urlpolicy``);
the request then goes to one of the addresses just checked, with the name in ``Host`` and
in TLS SNI (the certificate is verified against the name), so a DNS answer that changes
after the check cannot point the request elsewhere. Redirects are never followed (a 3xx
is a failed attempt), the environment's proxies are ignored (they would connect by name),
the connection and the whole attempt have deadlines, and at most ``max_response_bytes``
of the answer are read. The result is an :class:`Attempt`, never an exception: the relay
(wired later) stores it, and schedules the next one with ``push.retry``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import httpx

from genesis.audit.redaction import REDACTED, clean_text, get_redactor
from genesis.push.retry import THROTTLE_STATUSES, Verdict, classify, parse_retry_after
from genesis.push.signing import sign_headers
from genesis.push.urlpolicy import Resolver, UrlPolicy, UrlRefused, resolve_destination, system_resolver

USER_AGENT: Final = "Genesis-Webhooks/1"
EXCERPT_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt did.

    ``error`` is None for any HTTP answer, else one of ``refused`` (the URL policy), ``connect``,
    ``tls``, ``timeout``, ``protocol``. ``excerpt`` is the start of the answer's body, printable and
    with credentials (and the endpoint's secrets) masked.
    """

    verdict: Verdict
    status: int | None
    duration_ms: float
    error: str | None = None
    detail: str = ""
    excerpt: str = ""
    retry_after: float | None = None
    address: str | None = None


class WebhookSender:
    """Delivers signed webhooks; one per process, shared by every endpoint.

    Args:
        policy: the SSRF allow-list. resolver: host -> addresses (injectable for tests).
        connect_timeout / total_timeout: seconds for the TCP+TLS connection / the whole attempt.
        max_response_bytes: how much of an answer is read at most.
        tls: the TLS trust to use (default: the system's); tests pass a context trusting their CA.
    """

    def __init__(
        self, *, policy: UrlPolicy, resolver: Resolver = system_resolver, connect_timeout: float = 5.0,
        total_timeout: float = 15.0, max_response_bytes: int = 4096, tls: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._total = total_timeout
        self._max_bytes = max_response_bytes
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
            follow_redirects=False, trust_env=False, verify=tls if tls is not None else True,
            # No keep-alive: the pool is keyed by address, and a TLS connection verified for one name
            # must not carry another name's delivery to the same address.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(
        self, *, url: str, msg_id: str, body: bytes, secrets: Sequence[str], timestamp: int | None = None,
    ) -> Attempt:
        """POST ``body`` to ``url`` signed with ``secrets`` (Standard Webhooks), as delivery ``msg_id``.

        ``msg_id`` must be the same on every retry of one delivery: it is the receiver's idempotency key.
        """
        began = time.perf_counter()
        try:
            destination = await resolve_destination(url, self._policy, self._resolver)
        except UrlRefused as exc:
            return Attempt(Verdict.RETRY, None, _ms(began), "refused", exc.message)
        target = destination.url
        headers = sign_headers(secrets, msg_id, body, timestamp=timestamp)
        host_header = _bracketed(target.host) if target.literal is not None else target.host
        if target.port != (443 if target.scheme == "https" else 80):
            host_header += f":{target.port}"
        headers.update({"host": host_header, "content-type": "application/json", "user-agent": USER_AGENT,
                        "accept-encoding": "identity"})  # the excerpt is read raw
        extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
        last = Attempt(Verdict.RETRY, None, 0.0, "connect", "no address could be reached")
        try:
            async with asyncio.timeout(self._total):
                for address in destination.addresses:
                    request = self._client.build_request(
                        "POST", httpx.URL(scheme=target.scheme, host=str(address), port=target.port,
                                          raw_path=target.target.encode()),
                        headers=headers, content=body, extensions=extensions,
                    )
                    try:
                        return await self._exchange(request, began, str(address), secrets)
                    except httpx.ConnectError as exc:
                        kind = "tls" if _is_tls(exc) else "connect"
                        last = Attempt(Verdict.RETRY, None, _ms(began), kind, _describe(exc), address=str(address))
                        if kind == "tls":
                            return last  # the name's certificate is wrong: another address will not fix it
        except (TimeoutError, httpx.TimeoutException):
            return Attempt(Verdict.RETRY, None, _ms(began), "timeout", f"no complete answer within {self._total:g} s")
        return last

    async def _exchange(self, request: httpx.Request, began: float, address: str, secrets: Sequence[str]) -> Attempt:
        try:
            response = await self._client.send(request, stream=True, follow_redirects=False)
        except (httpx.ConnectError, httpx.TimeoutException):
            raise  # handled by send(): try the next address / give up on time
        except httpx.HTTPError as exc:
            return Attempt(Verdict.RETRY, None, _ms(began), "protocol", _describe(exc), address=address)
        try:
            head = bytearray()
            async for chunk in response.aiter_raw():
                head += chunk
                if len(head) >= self._max_bytes:
                    break  # enough to show; the rest is never read
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError:
            pass  # a status arrived; a broken body does not change the verdict
        finally:
            await response.aclose()
        status = response.status_code
        verdict = classify(status)
        detail = ""
        if 300 <= status < 400:
            detail = "redirect not followed"
        retry_after = parse_retry_after(response.headers.get("retry-after")) if status in THROTTLE_STATUSES else None
        excerpt = _excerpt(bytes(head[: self._max_bytes]), secrets)
        return Attempt(verdict, status, _ms(began), None, detail, excerpt, retry_after, address)


def _excerpt(raw: bytes, secrets: Sequence[str]) -> str:
    text = clean_text(raw.decode("utf-8", "replace"), EXCERPT_CHARS * 2)
    text = "".join(c if c.isprintable() else " " for c in text)
    for secret in secrets:
        for form in (secret, secret.removeprefix("whsec_")):
            if form:
                text = text.replace(form, REDACTED)
    return get_redactor().scrub(text)[:EXCERPT_CHARS]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: BaseException) -> str:
    return clean_text(f"{type(exc).__name__}: {exc}", 200)


def _ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 3)
