"""Text safe to show: hostile strings become visible escapes on a terminal and inert cells in a spreadsheet."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genesis.safetext import FORMULA_PREFIXES, printable, printable_row, spreadsheet_cell

HOSTILE = {
    "esc and cr: a fake success": ("bad\x1b[2K\r   42 success admin.login",
                                   "bad\\x1b[2K\\x0d   42 success admin.login"),
    "bidi override": ("user\u202eexe.txt", "user\\u202eexe.txt"),
    "bidi isolates": ("a\u2066b\u2069c", "a\\u2066b\\u2069c"),
    "c1 next line and csi": ("x\x85y\x9bz", "x\\x85y\\x9bz"),
    "line and paragraph separators": ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
    "zero width and bom": ("a\u200bb\ufeffc", "a\\u200bb\\ufeffc"),
    "nul bel del tab lf": ("\x00\x07\x7f\t\n", "\\x00\\x07\\x7f\\x09\\x0a"),
    "a backslash stays unambiguous": ("looks\\x1bescaped", "looks\\\\x1bescaped"),
    "plain text and other scripts pass": ("Zürich 東京 BTC/USD", "Zürich 東京 BTC/USD"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_printable_escapes_every_control_bidi_and_separator_character(case: str) -> None:
    raw, shown = HOSTILE[case]
    assert printable(raw) == shown


@given(st.text())
def test_nothing_printable_returns_can_act_on_a_terminal(text: str) -> None:
    shown = printable(text)
    assert all(unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in shown)
    assert printable(shown.replace("\\", "")) == shown.replace("\\", "")  # escapes are plain text themselves


def test_rows_escape_every_cell_then_pad() -> None:
    assert printable_row("a\rb", None, 7, widths=(6, 2)) == "a\\x0db    7"


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_a_cell_that_a_spreadsheet_would_run_becomes_text(prefix: str) -> None:
    cell = spreadsheet_cell(prefix + "HYPERLINK(\"http://x\",\"y\")")
    assert isinstance(cell, str) and cell.startswith("'")


def test_spreadsheet_cells_are_printable_and_numbers_pass_unchanged() -> None:
    assert spreadsheet_cell("ok\x85\u202e") == "ok\\x85\\u202e"
    assert spreadsheet_cell("=1+1") == "'=1+1"
    assert spreadsheet_cell(-5) == -5 and spreadsheet_cell(None) is None and spreadsheet_cell(1.5) == 1.5
