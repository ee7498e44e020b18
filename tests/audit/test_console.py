"""The console: coloured key=value on a terminal (a real pseudo-terminal here), JSON lines elsewhere."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import pytest

from genesis.audit.console import ConsoleFormatter, escape
from genesis.audit.context import bind_request
from genesis.audit.logging import console_formatter, setup_logging
from genesis.config import Settings

SGR = re.compile("\x1b\\[[0-9;]*m")  # colour codes, the only escape sequences the renderer writes
HOSTILE = "mallory\x1b[2J\x1b]0;owned\x07\r\nINFO forged line\x9b1m\u202etxt.exe\u2066"


@contextmanager
def terminal() -> Iterator[tuple[TextIO, Callable[[], str]]]:
    """A pseudo-terminal: the stream a process would have as stderr, and a reader of what the terminal got."""
    master, slave = os.openpty()
    stream = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115 - closed below
    received = bytearray()

    def read(wait_for: str = "\n") -> str:
        deadline = time.monotonic() + 30
        while wait_for.encode() not in received and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                received.extend(os.read(master, 65536))
        return received.decode("utf-8")

    try:
        yield stream, read
    finally:
        stream.close()
        os.close(master)


def console_lines(
    make_settings: Callable[..., Settings], stream: TextIO, body: Callable[[], None], **opts: Any
) -> None:
    runtime = setup_logging(make_settings(log_console=True, **opts), console=stream)
    try:
        body()
        assert runtime.flush()
    finally:
        runtime.close()


def hostile_and_plain() -> None:
    log = logging.getLogger("genesis.test.console")
    with bind_request(request_id="req-7", correlation_id="corr-7", user=HOSTILE):
        log.warning("login failed for %s", HOSTILE, extra={"attempted": HOSTILE, "count": 3,
                                                            "color_message": "\x1b[31mred\x1b[0m"})
    log.info("done", extra={"action": "job.finish", "password": "hunter2-SENTINEL"})


def test_a_terminal_gets_coloured_key_value_lines_with_untrusted_values_escaped(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    with terminal() as (stream, read):
        console_lines(make_settings, stream, hostile_and_plain)
        text = read("job.finish")
    first, second = (line for line in text.replace("\r\n", "\n").split("\n") if "genesis.test.console" in line)
    assert "\x1b[33mwarning" in first and "\x1b[36mattempted\x1b[0m=" in first  # level and key colours
    shown = "mallory\\x1b[2J\\x1b]0;owned\\x07\\x0d\\x0aINFO forged line\\x9b1m\\u202etxt.exe\\u2066"
    assert f"login failed for {shown}" in first
    # Only the renderer's own SGR colour codes reach the terminal: no erase, no title, no CR, no C1, no bidi.
    plain = SGR.sub("", first)
    assert not any(c in plain for c in "\x1b\x07\r\x9b\u202e\u2066")
    assert "user=mallory" in plain and "correlation_id=corr-7" in plain and "count=3" in plain
    assert "red" not in plain  # uvicorn's coloured copy of the message is dropped
    plain = SGR.sub("", second)
    assert "action=job.finish" in plain and "password=[REDACTED]" in plain and "hunter2" not in text


def test_no_color_keeps_the_layout_without_colours(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    with terminal() as (stream, read):
        console_lines(make_settings, stream, hostile_and_plain)
        text = read("job.finish")
    assert "\x1b" not in text and "[warning ]" in text and "attempted=mallory\\x1b[2J" in text


def test_not_a_terminal_gets_json_lines_without_escape_characters(make_settings: Callable[..., Settings]) -> None:
    stream = io.StringIO()
    console_lines(make_settings, stream, hostile_and_plain)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [r for r in records if r["logger"] == "genesis.test.console"]
    assert len(mine) == 2 and "\x1b" not in json.dumps(mine, ensure_ascii=False).replace("\\u001b", "")
    assert mine[0]["attempted"].startswith("mallory\\x1b[2J") and "color_message" not in mine[0]


@pytest.mark.parametrize(("setting", "tty", "expect"), [
    ("auto", True, "console"), ("auto", False, "json"), ("console", False, "console"), ("json", True, "json"),
])  # fmt: skip
def test_the_console_format_setting_chooses_the_renderer(
    make_settings: Callable[..., Settings], setting: str, tty: bool, expect: str
) -> None:
    settings = make_settings(log_console_format=setting)
    if tty:
        with terminal() as (stream, _):
            chosen = console_formatter(settings, stream)
    else:
        chosen = console_formatter(settings, io.StringIO())
    assert (chosen is not None) == (expect == "console")
    if chosen is not None:
        assert chosen.colors == (tty and not os.environ.get("NO_COLOR"))


def test_json_format_on_a_terminal_writes_json(make_settings: Callable[..., Settings]) -> None:
    with terminal() as (stream, read):
        console_lines(make_settings, stream, hostile_and_plain, log_console_format="json")
        text = read("job.finish")
    lines = [json.loads(x) for x in text.replace("\r\n", "\n").splitlines() if x.startswith("{")]
    assert [x["event"] for x in lines if x["logger"] == "genesis.test.console"][-1] == "job.finish"


def test_tracebacks_go_below_the_line_and_stay_escaped() -> None:
    formatter = ConsoleFormatter(colors=False)
    try:
        raise ValueError("bad \x1b[31m input\rover")
    except ValueError:
        record = logging.LogRecord("genesis.x", logging.ERROR, __file__, 1, "failed", (), None)
        import sys

        record.exc_info = sys.exc_info()
    text = formatter.format_line(record).decode()
    head, *trace = text.rstrip("\n").split("\n")
    assert head.startswith(tuple("0123456789")) and "[error   ] failed" in head and head.endswith("[genesis.x]")
    assert trace[0] == "Traceback (most recent call last):"
    assert trace[-1] == "ValueError: bad \\x1b[31m input\\x0dover"


def test_escape_shows_every_control_and_keeps_ordinary_text() -> None:
    assert escape("naïve café → ok\t") == "naïve café → ok\\x09"
    assert escape("\x00\x1f\x7f\x85\u2028\u202a\u2069") == "\\x00\\x1f\\x7f\\x85\\u2028\\u202a\\u2069"
