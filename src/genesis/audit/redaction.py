"""Redaction: secrets never reach a log line or an audit row.

Two rules, applied to log records and audit metadata alike:

* a mapping key whose normalised name (lower case, ``-`` as ``_``) contains one
  of the sensitive words, or equals one of the configured extra names, has its
  value replaced by ``[REDACTED]`` at any depth of dicts and lists;
* inside every string, bearer/basic credentials, JWT-looking tokens and
  ``secret=value`` pairs are replaced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

REDACTED: Final = "[REDACTED]"

# Substrings of a normalised key that mark its value as secret.
SENSITIVE_WORDS: Final = (
    "password", "passwd", "secret", "token", "authorization", "cookie",
    "api_key", "apikey", "private_key", "credential",
)  # fmt: skip
# Exact names from the specification, kept for documentation and tests.
SENSITIVE_KEYS: Final = frozenset({
    "password", "passwd", "secret", "client_secret", "token", "access_token",
    "refresh_token", "authorization", "cookie", "set_cookie", "api_key",
})  # fmt: skip

NO_LIMIT: Final = 1 << 62


def clean_text(value: object, limit: int = NO_LIMIT) -> str:
    """A NUL-free, valid-UTF-8 string (lone surrogates become ``?``) of at most ``limit`` code points."""
    if type(value) is str and len(value) <= limit and "\x00" not in value and value.isascii():
        return value  # the common case, checked in O(1) + one scan for NUL
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def json_safe(value: Any, _depth: int = 0) -> Any:
    """Convert ``value`` to plain JSON types that encode deterministically.

    Mappings get string keys, tuples/sets become lists, non-finite floats and
    integers outside the signed 64-bit range become strings, anything else its
    ``str()``; strings lose NULs and lone surrogates. Nesting deeper than 32
    levels is cut to a string.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(value, NO_LIMIT)
    if isinstance(value, int):
        return int(value) if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(value)
    if _depth >= 32:
        return clean_text(value, 1024)
    if isinstance(value, Mapping):
        return {clean_text(k, NO_LIMIT): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, _depth + 1) for v in value]
    return clean_text(value, NO_LIMIT)


_JWT = r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"
_AUTH = r"(?i:\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
_PAIR = (
    r"(?i:\b(?:password|passwd|pwd|secret|client_secret|token|access_token|refresh_token"
    r"|api_key|apikey|authorization)\b)"
    r"""(?:"\s*:\s*"|'\s*:\s*'|\s*[:=]\s*)[^\s"'&,;}]+"""
)
_SCRUB = re.compile(f"(?P<jwt>{_JWT})|(?P<auth>{_AUTH})|(?P<pair>{_PAIR})")
_QUICK = re.compile(r"eyj|bearer|basic|pass|pwd|secret|token|key|authorization")  # on lower-cased text


def _replace(match: re.Match[str]) -> str:
    if match.lastgroup == "jwt":
        return REDACTED
    text = match.group(0)
    if match.lastgroup == "auth":
        return text.split(None, 1)[0] + " " + REDACTED
    # keep "name=" / "name": " and drop the value
    head = re.match(r"""[A-Za-z_]+(?:"\s*:\s*"|'\s*:\s*'|\s*[:=]\s*)""", text)
    return (head.group(0) if head else "") + REDACTED


def _norm(key: str) -> str:
    return key.lower().replace("-", "_")


class Redactor:
    """Replaces secret values in nested structures and scrubs credentials from text."""

    def __init__(self, extra_fields: Iterable[str] = ()) -> None:
        self.extra = frozenset(_norm(f) for f in extra_fields if f)
        self._cache: dict[str, bool] = {}

    def is_sensitive(self, key: str) -> bool:
        """Whether a mapping key names a secret."""
        hit = self._cache.get(key)
        if hit is None:
            norm = _norm(key)
            hit = norm in self.extra or any(word in norm for word in SENSITIVE_WORDS)
            if len(self._cache) < 4096:
                self._cache[key] = hit
        return hit

    def may_hold_secrets(self, text: str) -> bool:
        """A cheap pre-check: False means :meth:`scrub` would return ``text`` unchanged."""
        return _QUICK.search(text.lower()) is not None

    def scrub(self, text: str) -> str:
        """Replace credentials embedded in free text (JWTs, bearer tokens, key=value)."""
        if not _QUICK.search(text.lower()):
            return text
        return _SCRUB.sub(_replace, text)

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` with secret keys masked and strings scrubbed (types kept)."""
        return self._walk(value, 0, False)

    def clean(self, value: Any) -> Any:
        """Like :meth:`redact`, and also JSON-safe (see ``events.json_safe``): for audit metadata."""
        return self._walk(value, 0, True)

    def _walk(self, value: Any, depth: int, strict: bool) -> Any:
        kind = type(value)
        if kind is str:
            text = self.scrub(value)
            return text.replace("\x00", "\ufffd") if strict and "\x00" in text else text
        if kind is int or kind is bool or value is None:
            return json_safe(value) if strict and kind is int else value
        if kind is float:
            return json_safe(value) if strict else value
        if depth > 32:
            return json_safe(value, 32) if strict else value
        if kind is dict or isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if strict and type(k) is not str:
                    k = json_safe(k) if isinstance(k, str) else str(k)
                if isinstance(k, str) and self.is_sensitive(k):
                    out[k] = REDACTED if v is not None else None
                else:
                    out[k] = self._walk(v, depth + 1, strict)
            return out
        if kind is list or kind is tuple or isinstance(value, (list, tuple, set, frozenset)):
            return [self._walk(v, depth + 1, strict) for v in value]
        if isinstance(value, str):
            return self._walk(str(value), depth, strict)
        return json_safe(value, depth) if strict else value


_current = Redactor()


def get_redactor() -> Redactor:
    """The process-wide redactor (configured by ``setup_logging``)."""
    return _current


def configure_redactor(extra_fields: Iterable[str] = ()) -> Redactor:
    """Replace the process-wide redactor, adding ``extra_fields`` to the sensitive names."""
    global _current
    _current = Redactor(extra_fields)
    return _current
