"""Log records to JSON lines: one object, one line, whatever the input contains.

orjson escapes ``"``, ``\\`` and every control character (CR, LF, ESC...);
:func:`genesis.audit.export.ndjson_line` also escapes U+2028/U+2029/U+0085, which
some readers treat as line breaks. Fields are described in ``docs/logging.md``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Final

import orjson

from genesis.audit.context import correlation_id_var, request_id_var, user_var
from genesis.audit.export import ndjson_line
from genesis.audit.redaction import REDACTED, Redactor, get_redactor, json_safe

CONTEXT_ATTR: Final = "genesis_ctx"
"""LogRecord attribute holding ``(correlation_id, request_id, user)`` captured by the handler."""

_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName", CONTEXT_ATTR}
)
_BASE_KEYS: Final = frozenset(
    {"timestamp", "level", "logger", "event", "message", "correlation_id", "request_id", "user", "pid"}
)


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one UTF-8 JSON line (bytes, newline included)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor
        self._second = -1
        self._prefix = ""

    def timestamp(self, created: float) -> str:
        """RFC 3339 UTC with microseconds and ``Z``: ``2024-05-01T12:00:00.123456Z``."""
        us = int(created * 1_000_000)
        second, micro = divmod(us, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{micro:06d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return self.format_line(record).decode("utf-8")

    def format_line(self, record: logging.LogRecord) -> bytes:
        redactor = self._redactor or get_redactor()
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        ctx = record.__dict__.get(CONTEXT_ATTR)
        if ctx is None:
            ctx = (correlation_id_var.get(), request_id_var.get(), user_var.get())
        attrs = record.__dict__
        event = attrs.get("action") or attrs.get("event")
        if not isinstance(event, str):
            event = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        obj: dict[str, Any] = {
            "timestamp": self.timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": redactor.scrub(event[:200]),
            "message": redactor.scrub(message),
            "correlation_id": ctx[0],
            "request_id": ctx[1],
            "user": ctx[2],
            "pid": record.process or os.getpid(),
        }
        for key, value in attrs.items():
            if key in _STANDARD:
                continue
            if key in _BASE_KEYS:
                if key == "user" and obj["user"] is None:
                    obj["user"] = value if isinstance(value, str) else str(value)
                    continue
                key = f"extra_{key}"
            obj[key] = REDACTED if redactor.is_sensitive(key) else redactor.redact(value)
        if record.exc_info:
            obj["exception"] = redactor.scrub(self.formatException(record.exc_info))
        if record.stack_info:
            obj["stack"] = redactor.scrub(record.stack_info)
        try:
            return ndjson_line(obj, lenient=True)
        except (TypeError, orjson.JSONEncodeError):
            return ndjson_line(json_safe(obj))
