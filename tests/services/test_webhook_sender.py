"""The webhook sender against real receivers on 127.0.0.1 (plain HTTP and TLS with a throwaway CA)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from genesis.push.retry import Verdict
from genesis.push.signing import generate_secret
from genesis.push.urlpolicy import UrlPolicy
from genesis.services.webhook_sender import WebhookSender
from tests.push.test_signing import reference_verify

LOCAL = UrlPolicy.allowing(networks=["127.0.0.1/32"])


@dataclass
class Receiver:
    """What a receiver saw: requests by path, accepted connections, SNI names."""

    secret: str
    port: int = 0
    requests: list[tuple[str, dict[str, str], bytes, bool]] = field(default_factory=list)
    connections: int = 0
    sni: list[str | None] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse would show

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                reference_verify([receiver.secret], headers, body)
                valid = True
            except ValueError:
                valid = False
            receiver.requests.append((self.path, headers, body, valid))
            if self.path == "/slow":
                receiver.release.wait(20)
            status, extra, payload = {
                "/ok": (204 if valid else 401, {}, b""),
                "/redirect": (302, {"location": f"http://127.0.0.1:{receiver.port}/ok"}, b""),
                "/gone": (410, {}, b""),
                "/throttle": (503, {"retry-after": "120"}, b"busy"),
                "/chatty": (500, {}, b"oops \x00\x1b[31m " + receiver.secret.encode() + b" Bearer abc.def.ghi "
                            + b"x" * 1_000_000),
                "/slow": (200, {}, b""),
            }.get(self.path, (404, {}, b""))
            try:
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the sender stopped reading: what a capped read does

    return Handler


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.receiver.connections += 1
        return True


def serve(receiver: Receiver, tls: ssl.SSLContext | None = None) -> tuple[CountingServer, threading.Thread]:
    server = CountingServer(("127.0.0.1", 0), handler_for(receiver))
    server.receiver = receiver
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver(generate_secret())
    server, thread = serve(got)
    try:
        yield got
    finally:
        got.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def send(url: str, secrets: Sequence[str], policy: UrlPolicy = LOCAL, **options: Any) -> Any:
    async def go() -> Any:
        async with WebhookSender(policy=policy, **options) as sender:
            return await sender.send(url=url, msg_id="msg_fixed", body=b'{"type":"anomaly"}', secrets=secrets)
    return asyncio.run(go())


def test_a_delivery_is_signed_so_the_reference_verifier_accepts_it(receiver: Receiver) -> None:
    attempt = send(f"http://127.0.0.1:{receiver.port}/ok", [receiver.secret])
    assert (attempt.verdict, attempt.status, attempt.error) == (Verdict.DELIVERED, 204, None)
    (path, headers, body, valid), = receiver.requests
    assert path == "/ok"
    assert valid and body == b'{"type":"anomaly"}' and headers["webhook-id"] == "msg_fixed"
    assert headers["content-type"] == "application/json" and headers["host"] == f"127.0.0.1:{receiver.port}"


def test_a_wrong_secret_is_rejected_by_the_receiver(receiver: Receiver) -> None:
    attempt = send(f"http://127.0.0.1:{receiver.port}/ok", [generate_secret()])
    assert (attempt.verdict, attempt.status) == (Verdict.RETRY, 401)


def test_a_redirect_is_a_failure_and_is_not_followed(receiver: Receiver) -> None:
    attempt = send(f"http://127.0.0.1:{receiver.port}/redirect", [receiver.secret])
    assert (attempt.verdict, attempt.status, attempt.detail) == (Verdict.RETRY, 302, "redirect not followed")
    assert [r[0] for r in receiver.requests] == ["/redirect"]


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    attempt = send(f"http://127.0.0.1:{receiver.port}/slow", [receiver.secret], total_timeout=0.5)
    assert (attempt.verdict, attempt.status, attempt.error) == (Verdict.RETRY, None, "timeout")
    assert 400 <= attempt.duration_ms < 10_000


def test_410_disables_and_503_throttles_with_retry_after(receiver: Receiver) -> None:
    assert send(f"http://127.0.0.1:{receiver.port}/gone", [receiver.secret]).verdict is Verdict.DISABLE
    throttled = send(f"http://127.0.0.1:{receiver.port}/throttle", [receiver.secret])
    assert (throttled.verdict, throttled.retry_after, throttled.excerpt) == (Verdict.THROTTLED, 120.0, "busy")


def test_the_response_read_is_capped_and_its_excerpt_printable_and_redacted(receiver: Receiver) -> None:
    attempt = send(f"http://127.0.0.1:{receiver.port}/chatty", [receiver.secret], max_response_bytes=2048)
    assert attempt.status == 500 and len(attempt.excerpt) <= 256
    assert receiver.secret not in attempt.excerpt and receiver.secret.removeprefix("whsec_") not in attempt.excerpt
    assert "abc.def.ghi" not in attempt.excerpt and "[REDACTED]" in attempt.excerpt
    assert attempt.excerpt.isprintable()


def test_loopback_that_is_not_allow_listed_is_refused_before_any_connection(receiver: Receiver) -> None:
    for url in (f"http://127.0.0.1:{receiver.port}/ok", f"https://127.0.0.1:{receiver.port}/ok"):
        attempt = send(url, [receiver.secret], policy=UrlPolicy())
        assert (attempt.verdict, attempt.error) == (Verdict.RETRY, "refused")
    resolves_to_loopback = send(f"https://hooks.example:{receiver.port}/ok", [receiver.secret], policy=UrlPolicy(),
                                resolver=fixed_resolver("127.0.0.1"))
    assert resolves_to_loopback.error == "refused" and "loopback" in resolves_to_loopback.detail
    assert receiver.connections == 0 and receiver.requests == []


def fixed_resolver(*addresses: str, calls: list[str] | None = None) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return list(addresses)
    return resolve


def test_an_unreachable_address_is_a_connect_error() -> None:
    from tests.live import free_port

    attempt = send(f"http://127.0.0.1:{free_port()}/ok", [generate_secret()])
    assert (attempt.verdict, attempt.error) == (Verdict.RETRY, "connect")


@pytest.fixture
def tls_receiver() -> Iterator[tuple[Receiver, ssl.SSLContext]]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.test").configure_cert(server_ctx)
    got = Receiver(generate_secret())

    def remember(sock: Any, name: str | None, ctx: Any) -> None:
        got.sni.append(name)

    server_ctx.sni_callback = remember
    server, thread = serve(got, tls=server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    try:
        yield got, client_ctx
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_https_connects_to_the_checked_address_with_the_name_in_host_and_sni(
    tls_receiver: tuple[Receiver, ssl.SSLContext],
) -> None:
    receiver, client_tls = tls_receiver
    calls: list[str] = []
    attempt = send(f"https://hooks.test:{receiver.port}/ok", [receiver.secret], tls=client_tls,
                   resolver=fixed_resolver("127.0.0.1", calls=calls))
    assert (attempt.verdict, attempt.status, attempt.address) == (Verdict.DELIVERED, 204, "127.0.0.1")
    assert calls == ["hooks.test"]  # resolved once, by the policy check; the connection used that answer
    assert receiver.sni == ["hooks.test"] and receiver.requests[0][1]["host"] == f"hooks.test:{receiver.port}"
    assert receiver.requests[0][3]  # the signature verified


def test_a_certificate_for_another_name_fails_as_tls(tls_receiver: tuple[Receiver, ssl.SSLContext]) -> None:
    receiver, client_tls = tls_receiver
    attempt = send(f"https://other.test:{receiver.port}/ok", [receiver.secret], tls=client_tls,
                   resolver=fixed_resolver("127.0.0.1"))
    assert (attempt.verdict, attempt.error) == (Verdict.RETRY, "tls")
    assert receiver.requests == []


def test_a_connection_verified_for_one_name_never_carries_another_names_delivery(
    tls_receiver: tuple[Receiver, ssl.SSLContext],
) -> None:
    receiver, client_tls = tls_receiver

    async def go() -> list[Any]:
        async with WebhookSender(policy=LOCAL, tls=client_tls, resolver=fixed_resolver("127.0.0.1")) as sender:
            return [await sender.send(url=f"https://{name}:{receiver.port}/ok", msg_id="msg_1", body=b"{}",
                                      secrets=[receiver.secret]) for name in ("hooks.test", "other.test")]

    first, second = asyncio.run(go())
    assert first.verdict is Verdict.DELIVERED
    assert (second.verdict, second.error) == (Verdict.RETRY, "tls")  # same address, but not its certificate
    assert len(receiver.requests) == 1
