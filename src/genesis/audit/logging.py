"""The log pipeline: a non-blocking handler, one listener thread, several sinks.

The caller's side only captures the context variables and appends the record to
a deque; formatting, redaction and I/O happen on the listener thread in batches.
A failing sink is reported once on stderr, counted in
``genesis_log_sink_errors_total{sink}`` and retried on later batches.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from genesis.audit.console import ConsoleFormatter
from genesis.audit.context import correlation_id_var, request_id_var, trace_var, user_var
from genesis.audit.jsonlines import CONTEXT_ATTR, JsonLineFormatter, Layout
from genesis.audit.levels import parse_level
from genesis.audit.metrics import LOG_DROPPED, LOG_SINK_ERRORS
from genesis.audit.redaction import configure_redactor
from genesis.audit.sinks import ConsoleSink, LineFormatter, RotatingFileSink, Sink
from genesis.secretfile import make_private_dirs

MAX_QUEUE = 100_000
_BATCH = 2000

REPORT_QUIET_SECONDS = 60.0


class LogPipeline:
    """Queue of records drained by one thread that formats them and feeds the sinks."""

    def __init__(self, sinks: Sequence[Sink], formatter: JsonLineFormatter, *, max_queue: int = MAX_QUEUE) -> None:
        self.sinks = list(sinks)
        self.formatter = formatter
        self.max_queue = max_queue
        self.queue: collections.deque[logging.LogRecord | threading.Event] = collections.deque()
        self.wake = threading.Event()
        self._failing: dict[str, bool] = {}
        self._reported_at: dict[str, float] = {}
        self._stop = False
        self._progress = 0  # sink writes attempted; close() waits while this moves
        self._abandoned = False  # close() gave up: write nothing more than the batch in hand
        self._thread = threading.Thread(target=self._run, name="genesis-log-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.wake.wait(0.5)
            self.wake.clear()
            while self.queue and not self._abandoned:
                records: list[logging.LogRecord] = []
                markers: list[threading.Event] = []
                pop = self.queue.popleft
                try:
                    while len(records) < _BATCH:
                        item = pop()
                        if isinstance(item, threading.Event):  # a flush() marker
                            markers.append(item)
                            break
                        records.append(item)
                except IndexError:
                    pass
                if records:
                    self._emit(records)
                for marker in markers:
                    marker.set()
            if self._stop and (self._abandoned or not self.queue):
                return

    @staticmethod
    def _format(formatter: LineFormatter, records: list[logging.LogRecord]) -> list[bytes]:
        lines = []
        for record in records:
            try:
                lines.append(formatter.format_line(record))
            except Exception as exc:  # a broken record must not stop the pipeline
                lines.append(
                    b'{"level":"ERROR","message":"unformattable log record: %s"}\n' % type(exc).__name__.encode()
                )
        return lines

    def _emit(self, records: list[logging.LogRecord]) -> None:
        rendered: dict[int, list[bytes]] = {}
        for sink in self.sinks:
            # A sink may render records its own way (the console on a terminal); each formatter runs once a batch.
            formatter: LineFormatter = getattr(sink, "formatter", None) or self.formatter
            lines = rendered.get(id(formatter))
            if lines is None:
                lines = rendered[id(formatter)] = self._format(formatter, records)
            try:
                sink.write(lines)
            except Exception as exc:
                LOG_SINK_ERRORS.labels(sink=sink.name).inc()
                LOG_DROPPED.labels(reason="sink_error").inc(len(lines))
                if not self._failing.get(sink.name):
                    self._failing[sink.name] = True
                    # One report per outage: a sink that flaps (a full disk freeing a little space) is
                    # counted in the metric but not announced again within REPORT_QUIET_SECONDS.
                    last = self._reported_at.get(sink.name)
                    if last is None or time.monotonic() - last > REPORT_QUIET_SECONDS:
                        self._reported_at[sink.name] = time.monotonic()
                        _report(f"genesis logging: sink {sink.name!r} failed ({exc!r}); retrying on later batches")
            else:
                if self._failing.get(sink.name):
                    self._failing[sink.name] = False
                    if sink.name in self._reported_at:
                        _report(f"genesis logging: sink {sink.name!r} recovered")
            finally:
                self._progress += 1

    def _activity(self) -> tuple[object, ...]:
        """Changes whenever this pipeline or another process sharing its files writes a line."""
        return (self._progress, *(activity() for sink in self.sinks if (activity := getattr(sink, "activity", None))))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record enqueued before the call has been written."""
        marker = threading.Event()
        self.queue.append(marker)
        self.wake.set()
        return marker.wait(timeout)

    def close(self, stall_timeout: float = 30.0) -> None:
        """Write every queued record, then close the sinks.

        Progress decides, not elapsed time: a fixed deadline (5 s until issue 13) let a process exit while its
        listener was still writing on a busy machine, losing whole batches. ``close`` waits while this
        pipeline completes sink writes or a shared file changes (another process holding the file lock is
        writing; a starved process can wait for it a long time), and gives up only after ``stall_timeout``
        seconds of neither (a hung disk, a stopped process holding the lock). The records left are then
        counted (``genesis_log_dropped_total{reason="shutdown"}``) and reported on stderr.

        Args:
            stall_timeout: seconds without any progress after which the queue is abandoned.
        """
        self._stop = True
        self.wake.set()
        seen: object = None
        while self._thread.is_alive() and (now := self._activity()) != seen:
            seen = now
            self._thread.join(stall_timeout)
        if self._thread.is_alive():
            # The listener still uses the sinks' descriptors: closing them now could let a reused descriptor
            # number receive log lines. The process exit closes them.
            self._abandoned = True
            left = len(self.queue)
            LOG_DROPPED.labels(reason="shutdown").inc(left)
            _report(f"genesis logging: sinks made no progress for {stall_timeout:g} s at shutdown; "
                    f"{left} queued records and the batch being written are lost")
            return
        for sink in self.sinks:
            with contextlib.suppress(OSError):
                sink.close()


def _report(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode("utf-8", "replace"))


class QueueingHandler(logging.Handler):
    """Enqueues records for the listener; never formats, locks or does I/O on the caller."""

    def __init__(self, pipeline: LogPipeline, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.pipeline = pipeline
        self._queue = pipeline.queue
        self._wake = pipeline.wake
        self._max = pipeline.max_queue

    def handle(self, record: logging.LogRecord) -> bool:
        if self.filters and not self.filter(record):
            return False
        if len(self._queue) >= self._max:
            LOG_DROPPED.labels(reason="queue_full").inc()
            return False
        ctx = (correlation_id_var.get(), request_id_var.get(), user_var.get(), trace_var.get())
        record.__dict__[CONTEXT_ATTR] = ctx
        self._queue.append(record)
        if not self._wake.is_set():
            self._wake.set()
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


class LogSettings(Protocol):
    """The settings logging reads (``genesis.config.Settings`` has them all; tests may pass any object)."""

    @property
    def log_level(self) -> str: ...
    @property
    def log_console(self) -> bool: ...
    @property
    def log_console_format(self) -> str: ...
    @property
    def log_format(self) -> Layout: ...
    @property
    def log_service_name(self) -> str: ...
    @property
    def logs_path(self) -> Path: ...
    @property
    def log_file_max_bytes(self) -> int: ...
    @property
    def log_file_max_total_bytes(self) -> int: ...
    @property
    def log_file_backups(self) -> int: ...
    @property
    def log_rotate_daily(self) -> bool: ...
    @property
    def log_gzip(self) -> bool: ...
    @property
    def log_redact_fields(self) -> list[str]: ...


def build_formatter(settings: LogSettings) -> JsonLineFormatter:
    """The formatter of the JSON lines (files, and the console when it is not a terminal)."""
    return JsonLineFormatter(layout=settings.log_format, service_name=settings.log_service_name)


def console_formatter(settings: LogSettings, console: TextIO | None = None) -> ConsoleFormatter | None:
    """The terminal renderer when ``GENESIS_LOG_CONSOLE_FORMAT`` asks for it (``auto``: stderr is a TTY), else None.

    Colours only on a terminal and without ``NO_COLOR`` (https://no-color.org).
    """
    stream = console if console is not None else sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        tty = False
    if settings.log_console_format == "json" or (settings.log_console_format == "auto" and not tty):
        return None
    return ConsoleFormatter(colors=tty and not os.environ.get("NO_COLOR"))


def build_sinks(settings: LogSettings, console: TextIO | None = None) -> list[Sink]:
    """The sinks named by the settings: the console and the rotating file."""
    sinks: list[Sink] = []
    if settings.log_console:
        sinks.append(ConsoleSink(console, formatter=console_formatter(settings, console)))
    logs = settings.logs_path
    try:
        make_private_dirs(logs)  # inside the data directory, which must not be made 0755 on the way
    except OSError as exc:  # reported again by the sinks on every failing batch
        _report(f"genesis logging: cannot create {logs}: {exc!r}")
    sinks.append(
        RotatingFileSink(
            logs / "genesis.log",
            max_bytes=settings.log_file_max_bytes,
            backups=settings.log_file_backups,
            max_total_bytes=settings.log_file_max_total_bytes,
            daily=settings.log_rotate_daily,
            compress=settings.log_gzip,
        )
    )
    return sinks


@dataclass
class LoggingHandle:
    """The logging that ``setup_logging`` started; ``close()`` drains and removes it."""

    settings: LogSettings
    pipeline: LogPipeline
    handler: QueueingHandler
    closed: bool = False
    previous_level: int = logging.WARNING

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record logged before the call has reached the sinks."""
        return self.pipeline.flush(timeout)

    def close(self) -> None:
        """Write what is queued, detach the handler and close the sinks (idempotent)."""
        global _active
        if self.closed:
            return
        self.closed = True
        if _active is self:
            _active = None
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.previous_level)
        self.pipeline.close()


# The root logger is process-wide by nature; this is the one handle attached to it.
_active: LoggingHandle | None = None


def setup_logging(settings: LogSettings, *, console: TextIO | None = None) -> LoggingHandle:
    """Route every log record of the process through one pipeline configured by ``settings``.

    Idempotent: called again with equal settings it returns the running handle; otherwise the
    previous one is closed first.

    Args:
        settings: the ``log_*`` settings (a ``genesis.config.Settings``).
        console: stream of the console sink (default ``sys.stderr``).
    """
    global _active
    if _active is not None and not _active.closed:
        if _active.settings == settings and console is None:
            return _active
        _active.close()
    configure_redactor(settings.log_redact_fields)
    pipeline = LogPipeline(build_sinks(settings, console), build_formatter(settings))
    handler = QueueingHandler(pipeline)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, QueueingHandler)]:
        root.removeHandler(old)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(parse_level(settings.log_level))
    # Our lines carry no file/line/thread/process-name fields: skip the stack walk and lookups
    # the stdlib makes for every record (the Python logging HOWTO's "Optimization" section).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
    _active = LoggingHandle(settings, pipeline, handler, previous_level=previous)
    return _active


def active_logging() -> LoggingHandle | None:
    """The handle ``setup_logging`` last returned, if still open."""
    return _active
