"""docs/SECURITY.md: every control names its tests, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "SECURITY.md"
CITATION = re.compile(r"`([\w/]*\.py)?::(\w+)(?:\[\.\.\.\])?`")


def _controls() -> list[tuple[str, str]]:
    """(threat, tests cell) of each row of the Controls table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Controls", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| threat")]
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows if not set(row) <= set("|- ")]
    return [(cell[0], cell[-1]) for cell in cells]


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_control_of_security_md_names_tests_that_exist() -> None:
    controls = _controls()
    assert len(controls) >= 15
    missing = []
    for threat, tests in controls:
        cited = CITATION.findall(tests)
        assert cited, f"the control {threat!r} names no test"
        current: str | None = None
        for file, name in cited:
            current = file or current
            assert current is not None, f"{threat!r}: ::{name} without a file before it"
            path = ROOT / "tests" / current
            if not path.exists() or name not in _functions(path):
                missing.append(f"{current}::{name}")
    assert missing == []
