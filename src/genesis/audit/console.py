"""The console for people: one coloured ``key=value`` line per record, like structlog's ConsoleRenderer.

Used on stderr when it is a terminal (``GENESIS_LOG_CONSOLE_FORMAT=auto``) or when
asked for (``console``); JSON lines otherwise. The fields are those of the JSON
lines, after redaction. Every value is untrusted (a username, a path, a header), so
control characters that could drive the terminal - C0 including CR and LF, DEL, ESC,
the C1 controls, Unicode line separators and bidi overrides - are shown as
``\\xNN``/``\\uNNNN`` text; only the colours this module adds reach the terminal.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

import orjson

from genesis.audit.jsonlines import JsonLineFormatter
from genesis.audit.redaction import Redactor

_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_LF: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

RESET: Final = "\x1b[0m"
DIM: Final = "\x1b[2m"
BRIGHT: Final = "\x1b[1m"
KEY: Final = "\x1b[36m"  # cyan, as structlog
VALUE: Final = "\x1b[35m"  # magenta, as structlog
LOGGER: Final = "\x1b[34m"
LEVELS: Final = {
    "CRITICAL": "\x1b[31;1m", "ERROR": "\x1b[31m", "WARNING": "\x1b[33m", "AUDIT": "\x1b[35;1m",
    "INFO": "\x1b[32m", "DEBUG": "\x1b[34m",
}  # fmt: skip
_HIDDEN: Final = frozenset({"timestamp", "level", "logger", "event", "message", "pid", "exception", "stack"})
_EVENT_WIDTH: Final = 40


def _code(match: re.Match[str]) -> str:
    point = ord(match[0])
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


def escape(text: str) -> str:
    """``text`` with every terminal control shown as ``\\xNN``/``\\uNNNN``."""
    return _CONTROL.sub(_code, text)


def escape_block(text: str) -> str:
    """Like :func:`escape` but keeping line feeds: for tracebacks, printed on lines of their own."""
    return _CONTROL_BUT_LF.sub(_code, text)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return escape(value)
    return escape(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8"))


class ConsoleFormatter(JsonLineFormatter):
    """Renders a record as ``time [level] message  key=value ... [logger]`` (bytes, newline included).

    Args:
        redactor: default the process-wide one.
        colors: add ANSI colours (for a terminal that has not set ``NO_COLOR``).
    """

    def __init__(self, redactor: Redactor | None = None, *, colors: bool = True) -> None:
        super().__init__(redactor)
        self.colors = colors

    def format_line(self, record: logging.LogRecord) -> bytes:
        return self.render(self.fields(record)).encode("utf-8", "replace")

    def render(self, obj: dict[str, Any]) -> str:
        """One console line (and the traceback below it) from the fields of a JSON line.

        ``event`` is not shown: it is the message template, or the ``action`` shown as ``action=...``.
        """
        c = self.colors
        level = str(obj.get("level", ""))
        message = escape(str(obj.get("message", "")))
        parts = [
            f"{DIM}{obj.get('timestamp', '')}{RESET}" if c else str(obj.get("timestamp", "")),
            f"[{LEVELS.get(level, '')}{level.lower():<8}{RESET}]" if c else f"[{level.lower():<8}]",
            f"{BRIGHT}{message:<{_EVENT_WIDTH}}{RESET}" if c else f"{message:<{_EVENT_WIDTH}}",
        ]
        for key, value in obj.items():
            if key in _HIDDEN or value is None:
                continue
            parts.append(f"{KEY}{escape(key)}{RESET}={VALUE}{_value(value)}{RESET}" if c else
                         f"{escape(key)}={_value(value)}")
        logger = escape(str(obj.get("logger", "")))
        parts.append(f"[{LOGGER}{BRIGHT}{logger}{RESET}]" if c else f"[{logger}]")
        line = " ".join(parts)
        for block in ("exception", "stack"):
            if obj.get(block):
                line += "\n" + escape_block(str(obj[block]))
        return line + "\n"
