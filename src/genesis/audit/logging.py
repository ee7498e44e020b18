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
from typing import TextIO

from genesis.audit.checkpoints import CheckpointSigner
from genesis.audit.console import ConsoleFormatter
from genesis.audit.context import correlation_id_var, request_id_var, trace_var, user_var
from genesis.audit.jsonlines import CONTEXT_ATTR, JsonLineFormatter
from genesis.audit.levels import AUDIT, parse_level
from genesis.audit.metrics import LOG_DROPPED, LOG_SINK_ERRORS
from genesis.audit.redaction import configure_redactor
from genesis.audit.sinks import ConsoleSink, LineFormatter, RotatingFileSink, Sink
from genesis.audit.store import AuditStore
from genesis.audit.writer import AuditWriter
from genesis.config import Settings

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


def build_formatter(settings: Settings) -> JsonLineFormatter:
    """The formatter of the JSON lines (files, and the console when it is not a terminal)."""
    return JsonLineFormatter(layout=settings.log_format, service_name=settings.log_service_name)


def console_formatter(settings: Settings, console: TextIO | None = None) -> ConsoleFormatter | None:
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


def build_sinks(settings: Settings, console: TextIO | None = None) -> list[Sink]:
    """The sinks named by the settings: the console and the rotating file."""
    sinks: list[Sink] = []
    if settings.log_console:
        sinks.append(ConsoleSink(console, formatter=console_formatter(settings, console)))
    logs = settings.logs_path
    try:
        logs.mkdir(parents=True, exist_ok=True)
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
class LoggingRuntime:
    """Everything ``setup_logging`` started; ``close()`` stops it in order."""

    settings: Settings
    pipeline: LogPipeline
    handler: QueueingHandler
    writer: AuditWriter | None = None
    store: AuditStore | None = None
    closed: bool = False
    previous_level: int = logging.WARNING

    def flush(self, timeout: float = 5.0) -> bool:
        return self.pipeline.flush(timeout)

    def close(self) -> None:
        """Record the audit stop, drain the writer (shutdown checkpoint), then the log pipeline."""
        if self.closed:
            return
        self.closed = True
        from genesis.audit import runtime

        if self.writer is not None:
            try:
                runtime.log_action(AUDIT, "audit logging stopped", action="audit.stop", wait=True)
            except Exception as exc:
                logging.getLogger("genesis.audit").error("could not record audit stop: %r", exc)
            self.writer.close()
        if runtime.current_runtime() is self:
            runtime.configure_audit(None, None)
            runtime.set_current_runtime(None)
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.previous_level)
        self.pipeline.close()


def setup_logging(
    settings: Settings,
    *,
    store: AuditStore | None = None,
    signer: CheckpointSigner | None = None,
    console: TextIO | None = None,
) -> LoggingRuntime:
    """Configure logging (and, given a store, the audit writer) from ``settings``.

    Idempotent: called again with the same settings and store it returns the running
    runtime; otherwise the previous one is closed first.

    Args:
        settings: a ``genesis.config.Settings``.
        store: the audit store; without it ``log_action`` cannot record AUDIT events.
        signer: checkpoint signer; default the key in ``settings.data_dir``.
        console: stream of the console sink (default ``sys.stderr``).
    """
    from genesis.audit import runtime

    active = runtime.current_runtime()
    if active is not None and not active.closed:
        if active.settings == settings and active.store is store:
            return active
        active.close()
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
    writer = None
    if store is not None:
        if signer is None:
            signer = CheckpointSigner.from_data_dir(settings.data_dir)
        writer = AuditWriter(
            store,
            batch_max=settings.audit_batch_max,
            checkpoint_interval=settings.audit_checkpoint_interval_seconds,
            signer=signer,
        )
    rt = LoggingRuntime(settings, pipeline, handler, writer, store, previous_level=previous)
    runtime.set_current_runtime(rt)
    runtime.configure_audit(writer, store)
    if writer is not None:
        try:
            runtime.log_action(AUDIT, "audit logging started", action="audit.start", wait=True)
        except Exception as exc:  # the store may be down at start; the writer recovers later
            logging.getLogger("genesis.audit").error("could not record audit start: %r", exc)
    return rt
