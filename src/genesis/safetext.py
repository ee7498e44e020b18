"""Text safe to show to a person: on a terminal and in a spreadsheet.

Anything a client sends can reach an operator's screen (a username, a user agent, a path, a CSV
row rejected by an import). On a terminal, ESC starts a control sequence that can recolour, move
the cursor or erase a line, CR returns to the start of the line so that later text overwrites
earlier text, and bidirectional overrides (U+202E...) reorder what is shown. :func:`printable`
makes every such character visible as an escape (``\\x1b``, ``\\r``, ``\\u202e``), and escapes the
backslash itself, so an escape shown can never be confused with text that merely looks like one.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (OWASP CSV
Injection); some also strip a leading tab or CR first. :func:`spreadsheet_cell` makes such a cell
text by prefixing a single quote, after :func:`printable`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final

# ASCII controls, DEL and the backslash: the whole story for ASCII text (the common case, one regex pass).
_ASCII_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f\\]")
# Beyond ASCII: C1 controls (Cc), format characters such as the bidi overrides and zero-width marks (Cf),
# line and paragraph separators (Zl, Zp) and lone surrogates (Cs).
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""First characters that make a spreadsheet cell a formula (with their full-width forms)."""


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escape_match(match: re.Match[str]) -> str:
    return _escape(match.group(0))


def printable(value: object) -> str:
    """``value`` as text in which no character can act on a terminal or reorder the line."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii():
        return _ASCII_UNSAFE.sub(_escape_match, text)
    return "".join(
        _escape(ch) if ch == "\\" or unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text
    )


def printable_row(*cells: object, widths: Sequence[int] = ()) -> str:
    """One line of a text table: each cell made :func:`printable`, then padded to its width (0: none)."""
    parts = []
    for index, cell in enumerate(cells):
        text = printable("" if cell is None else cell)
        width = widths[index] if index < len(widths) else 0
        parts.append(text.ljust(width) if width else text)
    return " ".join(parts)


def spreadsheet_cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: printable, and never a formula. Numbers pass unchanged."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + printable(text)
    return printable(text)
