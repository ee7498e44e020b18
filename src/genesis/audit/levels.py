"""The AUDIT log level: between INFO (20) and WARNING (30), so it can be filtered."""

from __future__ import annotations

import logging
from typing import Final

AUDIT: Final = 25
logging.addLevelName(AUDIT, "AUDIT")


def parse_level(level: int | str) -> int:
    """A numeric level from ``25``, ``"25"``, ``"audit"`` or ``"WARNING"``.

    Raises:
        ValueError: the name is not a known level.
    """
    if isinstance(level, int):
        return level
    text = level.strip().upper()
    if text.isdigit():
        return int(text)
    value = logging.getLevelName(text)
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value


def level_name(level: int) -> str:
    """The name of a numeric level (``"AUDIT"`` for 25)."""
    return logging.getLevelName(level)
