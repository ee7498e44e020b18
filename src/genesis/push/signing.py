"""Standard Webhooks 1.0 signatures: secrets, signing, verification.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` over the exact bytes sent;
the signature is HMAC-SHA256 with the secret's decoded bytes, written ``v1,<base64>``.
During a rotation the header carries several signatures separated by spaces, one per
secret, and a receiver accepts any match. ``webhook-id`` is the delivery's idempotency key:
the same on every retry of one delivery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Final

from genesis.errors import InvalidInput, Unauthenticated

SECRET_PREFIX: Final = "whsec_"
MIN_SECRET_BYTES: Final = 24
DEFAULT_TOLERANCE_SECONDS: Final = 300  # what the reference libraries accept either way of now


class SignatureError(Unauthenticated):
    """A webhook failed verification (missing headers, stale timestamp, no matching signature)."""


def generate_secret(nbytes: int = 32) -> str:
    """A new endpoint secret, ``whsec_`` + base64 of ``nbytes`` (>= 24) random bytes; show it once."""
    if nbytes < MIN_SECRET_BYTES:
        raise InvalidInput(f"a webhook secret has at least {MIN_SECRET_BYTES} random bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the prefix is optional, as in the reference libraries).

    Raises:
        InvalidInput: not base64, or shorter than 24 bytes.
    """
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("a webhook secret is 'whsec_' followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidInput(f"a webhook secret has at least {MIN_SECRET_BYTES} bytes")
    return key


def new_message_id() -> str:
    """A fresh ``webhook-id`` (``msg_`` + 128 random bits); reuse it for every retry of the delivery."""
    return "msg_" + secrets.token_urlsafe(16)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def sign_headers(
    endpoint_secrets: Sequence[str], msg_id: str, body: bytes, *, timestamp: int | None = None,
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``, signed with every secret (rotation: old and new).

    Raises:
        InvalidInput: no secret, or an id that could not travel in a header.
    """
    if not endpoint_secrets:
        raise InvalidInput("a webhook needs at least one secret to be signed with")
    if not msg_id or not msg_id.isprintable() or " " in msg_id or "." in msg_id:
        raise InvalidInput("a webhook id is printable, without spaces or dots")
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": " ".join(sign(secret, msg_id, ts, body) for secret in endpoint_secrets),
    }


def verify(
    endpoint_secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None,
) -> None:
    """Check a delivery's headers against ``body`` and any of ``endpoint_secrets``.

    Raises:
        SignatureError: a header is missing or malformed, the timestamp is more than ``tolerance``
            seconds from ``now``, or no ``v1`` signature matches (compared in constant time).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    if not msg_id or not stamp.isascii() or not stamp.isdigit():
        raise SignatureError("missing or malformed webhook-id / webhook-timestamp")
    moment = time.time() if now is None else now
    if abs(moment - int(stamp)) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    expected = [base64.b64decode(sign(s, msg_id, int(stamp), body)[3:]) for s in endpoint_secrets]
    for candidate in lowered.get("webhook-signature", "").split():
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue  # other schemes (v1a, ed25519) are not ours
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if any(hmac.compare_digest(given, want) for want in expected):
            return
    raise SignatureError("no matching webhook signature")
