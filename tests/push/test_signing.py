"""Standard Webhooks signatures: the reference test vector, the reference library both ways, rotation, tolerance."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from genesis.errors import InvalidInput
from genesis.push.signing import (
    SignatureError,
    generate_secret,
    new_message_id,
    secret_key,
    sign,
    sign_headers,
    verify,
)

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def reference_verify(secrets: list[str], headers: dict[str, str], body: bytes, tolerance: int = 300,
                     now: float | None = None) -> None:
    """The receiver's code from the reference (shared/reference/push-and-console.md, section 1)."""
    def ref_sign(secret: str, msg_id: str, ts: int, data: bytes) -> str:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + data, hashlib.sha256)
        return "v1," + base64.b64encode(mac.digest()).decode()

    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
    if not (msg_id and ts.isdigit() and abs((now or time.time()) - int(ts)) <= tolerance):
        raise ValueError("bad headers or stale timestamp")
    wanted = [ref_sign(s, msg_id, int(ts), body).encode() for s in secrets]
    got = h.get("webhook-signature", "").encode("latin-1").split()
    if not any(hmac.compare_digest(g, w) for g in got for w in wanted):
        raise ValueError("no matching signature")


def test_the_specification_test_vector_signs_and_verifies() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    headers = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS), "webhook-signature": VECTOR_SIGNATURE}
    verify([VECTOR_SECRET], headers, VECTOR_BODY, now=VECTOR_TS + 10)
    with pytest.raises(SignatureError, match="tolerance"):
        verify([VECTOR_SECRET], headers, VECTOR_BODY)  # 2021 is long past


def test_our_signatures_pass_the_reference_library_and_the_reference_snippet() -> None:
    secret = generate_secret()
    body = b'{"type":"anomaly","data":{"score":4.2}}'
    headers = sign_headers([secret], new_message_id(), body)
    assert Webhook(secret).verify(body, headers) == {"type": "anomaly", "data": {"score": 4.2}}
    reference_verify([secret], headers, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)  # one more byte: no longer the signed content


def test_the_reference_librarys_signatures_pass_our_verification() -> None:
    secret = generate_secret(24)
    body = b'{"x": 1}'
    signature = Webhook(secret).sign("msg_1", __import__("datetime").datetime.now(), body.decode())
    verify([secret], {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(int(time.time())),
                      "Webhook-Signature": signature}, body)


def test_during_a_rotation_both_secrets_sign_and_either_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    body = b"{}"
    headers = sign_headers([old, new], "msg_rotating", body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify([old], headers, body)
    verify([new], headers, body)
    Webhook(new).verify(body, headers)
    with pytest.raises(SignatureError, match="no matching"):
        verify([generate_secret()], headers, body)


@pytest.mark.parametrize("mutate", [
    lambda h: h.pop("webhook-id"),
    lambda h: h.__setitem__("webhook-timestamp", "soon"),
    lambda h: h.__setitem__("webhook-timestamp", str(int(time.time()) + 301)),
    lambda h: h.__setitem__("webhook-signature", "v1a," + h["webhook-signature"][3:]),
    lambda h: h.__setitem__("webhook-signature", "v1,not base64!"),
    lambda h: h.__setitem__("webhook-id", "msg_other"),
])
def test_tampered_or_stale_deliveries_are_refused(mutate: object) -> None:
    secret = generate_secret()
    headers = sign_headers([secret], "msg_x", b"{}")
    mutate(headers)  # type: ignore[operator]
    with pytest.raises(SignatureError):
        verify([secret], headers, b"{}")


def test_secrets_are_long_random_and_validated() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 32 and secret != generate_secret()
    with pytest.raises(InvalidInput, match="at least 24"):
        generate_secret(16)
    with pytest.raises(InvalidInput, match="at least 24"):
        secret_key("whsec_" + base64.b64encode(b"short").decode())
    with pytest.raises(InvalidInput, match="base64"):
        secret_key("whsec_***")
    with pytest.raises(InvalidInput, match="at least one secret"):
        sign_headers([], "msg_1", b"{}")
    with pytest.raises(InvalidInput, match="printable"):
        sign_headers([secret], "msg 1", b"{}")
