"""Log records to JSON lines: one object, one line, whatever the input contains.

orjson escapes ``"``, ``\\`` and every control character (CR, LF, ESC...);
:func:`genesis.audit.export.ndjson_line` also escapes U+2028/U+2029/U+0085, which
some readers treat as line breaks. Terminal controls (ESC, the C1 controls, bidi
overrides) would survive JSON escaping and drive the terminal of whoever prints a
decoded value, so they are written as visible text instead (``\\x1b``, ``\\u202e``).
The fields, in the ``json``, ``ecs`` and ``otel`` layouts, are described in
``docs/logging.md``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Final, Literal

import orjson

from genesis.audit import layouts
from genesis.audit.context import correlation_id_var, request_id_var, trace_var, user_var
from genesis.audit.export import ndjson_line
from genesis.audit.redaction import REDACTED, Redactor, get_redactor, json_safe

Layout = Literal["json", "ecs", "otel"]

CONTEXT_ATTR: Final = "genesis_ctx"
"""LogRecord attribute holding ``(correlation_id, request_id, user, trace)`` captured by the handler."""

# uvicorn repeats its message with ANSI colour codes as ``color_message``: a copy, carrying terminal codes.
_DROPPED: Final = frozenset({"color_message"})
_STANDARD: Final = (
    frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys())
    | {"message", "asctime", "taskName", CONTEXT_ATTR}
    | _DROPPED
)
_BASE_KEYS: Final = frozenset(
    {"timestamp", "level", "logger", "event", "message", "correlation_id", "request_id", "user", "pid"}
)

# In orjson's output ESC is the escape \u001b (and U+0085 is \u0085 after ndjson_line); the other C1 controls
# and the bidi embeddings, overrides and isolates are raw UTF-8. A JSON escape counts only after an even run of
# backslashes: in \\u001b the backslash is itself escaped and "u001b" is plain text.
_JSON_CONTROL: Final = re.compile(
    rb"(?<!\\)((?:\\\\)*)\\u00(1[bB]|[89][0-9a-fA-F])"
    rb"|\xc2([\x80-\x9f])"
    rb"|(\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9])"
)


def _visible(match: re.Match[bytes]) -> bytes:
    if match[2] is not None:  # a JSON escape: keep the backslash pairs before it, then \\xNN as text
        return match[1] + b"\\\\x" + match[2].lower()
    if match[3] is not None:
        return b"\\\\x" + match[3].hex().encode()
    return b"\\\\u%04x" % ord(match[4].decode("utf-8"))


def escape_terminal_controls(line: bytes) -> bytes:
    """A JSON ``line`` whose ESC, C1 controls and bidi overrides read as ``\\xNN``/``\\uNNNN`` text once decoded."""
    if b"\\u00" not in line and b"\xc2" not in line and b"\xe2" not in line:
        return line  # the common case: three scans, no regex
    return _JSON_CONTROL.sub(_visible, line)


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one UTF-8 JSON line (bytes, newline included) in one of the layouts.

    Args:
        redactor: default the process-wide one (``configure_redactor``).
        layout: ``json`` (Genesis' own field names), ``ecs`` (Elastic Common Schema) or ``otel``
            (the OpenTelemetry log data model).
        service_name: ``service.name`` of the ``ecs`` and ``otel`` layouts.
    """

    def __init__(self, redactor: Redactor | None = None, *, layout: Layout = "json", service_name: str = "genesis"):
        super().__init__()
        if layout not in layouts.LAYOUTS:
            raise ValueError(f"unknown log layout {layout!r}; expected one of {', '.join(layouts.LAYOUTS)}")
        self._redactor = redactor
        self.layout = layout
        self.service_name = service_name
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

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record as Genesis' own fields (the ``json`` layout), redacted: what every layout is built from."""
        redactor = self._redactor or get_redactor()
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        ctx = record.__dict__.get(CONTEXT_ATTR)
        if ctx is None:
            ctx = (correlation_id_var.get(), request_id_var.get(), user_var.get(), trace_var.get())
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
        return obj

    def format_line(self, record: logging.LogRecord) -> bytes:
        obj = self.fields(record)
        if self.layout != "json":
            ctx = record.__dict__.get(CONTEXT_ATTR)
            trace = ctx[3] if ctx is not None and len(ctx) > 3 else None
            obj = layouts.LAYOUTS[self.layout](
                obj, record=record, trace=trace, service_name=self.service_name,
                redactor=self._redactor or get_redactor(),
            )  # fmt: skip
        try:
            line = ndjson_line(obj, lenient=True)
        except (TypeError, orjson.JSONEncodeError):
            line = ndjson_line(json_safe(obj))
        return escape_terminal_controls(line)
