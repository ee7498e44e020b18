"""Field layouts of the JSON lines: Elastic Common Schema and the OpenTelemetry log data model.

Both are built from Genesis' own fields (:meth:`JsonLineFormatter.fields`), after
redaction, so every layout holds exactly what the ``json`` layout holds under other
names. Fields a schema does not define go under a ``genesis`` namespace (``genesis.*``
in ECS, ``genesis.*`` attributes in OTel), never at the top level, where they could
collide with a schema field. Examples of each layout are in ``docs/logging.md``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Final

from genesis.audit.redaction import Redactor

ECS_VERSION: Final = "8.11.0"
ACCESS_LOGGER: Final = "genesis.api.access"  # the request middleware's access lines (genesis.api.middleware)

_OWN: Final = frozenset(
    {"timestamp", "level", "logger", "event", "message", "correlation_id", "request_id", "user", "pid",
     "exception", "stack"}
)  # fmt: skip
_HEX32: Final = re.compile(r"^[0-9a-f]{32}$")


def _extras(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in _OWN}


def _ip(value: object) -> str | None:
    """``value`` when it is an IP address (ECS ``client.ip`` is typed ``ip``: anything else breaks the mapping)."""
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return None
    return None


def _error(record: logging.LogRecord, redactor: Redactor) -> tuple[str, str] | None:
    """``(type, message)`` of the record's exception, the message redacted like every other text."""
    if not record.exc_info or record.exc_info[0] is None:
        return None
    kind, exc = record.exc_info[0], record.exc_info[1]
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return name, redactor.scrub(str(exc))


def to_ecs(
    obj: dict[str, Any], *, record: logging.LogRecord, trace: tuple[str, str] | None, service_name: str,
    redactor: Redactor,
) -> dict[str, Any]:
    """Elastic Common Schema: ``@timestamp``, ``log.level``, ``message``, ``ecs.version`` first, as ecs-logging does."""
    out: dict[str, Any] = {
        "@timestamp": obj["timestamp"],
        "log.level": obj["level"].lower(),
        "message": obj["message"],
        "ecs.version": ECS_VERSION,
        "log": {"logger": obj["logger"]},
        "event": {"action": obj["event"]},
        "service": {"name": service_name},
        "process": {"pid": obj["pid"]},
    }
    if obj["correlation_id"] is not None:
        out["trace"] = {"id": obj["correlation_id"]}
    if trace is not None:
        out["span"] = {"id": trace[1]}
    http: dict[str, Any] = {}
    if obj["request_id"] is not None:
        http["request"] = {"id": obj["request_id"]}
    user = obj["user"]
    own = _extras(obj)
    if obj["logger"] == ACCESS_LOGGER:
        if "method" in own:
            http.setdefault("request", {})["method"] = own.pop("method")
        if "status" in own:
            http["response"] = {"status_code": own.pop("status")}
        if "path" in own:
            out["url"] = {"path": own.pop("path")}
        if isinstance(own.get("duration_ms"), (int, float)):
            out["event"]["duration"] = round(own.pop("duration_ms") * 1_000_000)  # ECS: nanoseconds
        if (ip := _ip(own.get("client_ip"))) is not None:
            own.pop("client_ip")
            out["client"] = {"ip": ip}
        if user is None and isinstance(own.get("actor"), str):
            user = own.pop("actor")
    if http:
        out["http"] = http
    if user is not None:
        out["user"] = {"name": user}
    error = _error(record, redactor)
    if error is not None or "exception" in obj:
        out["error"] = {"stack_trace": obj.get("exception")}
        if error is not None:
            out["error"].update(type=error[0], message=error[1])
    if "stack" in obj:
        own["stack"] = obj["stack"]
    if own:
        out["genesis"] = own
    return out


def severity_number(levelno: int) -> int:
    """OpenTelemetry SeverityNumber of a stdlib level: AUDIT (25) is INFO4 (12), as the OTel SDK maps 21-29."""
    if levelno < logging.DEBUG:
        return 1
    bands = ((logging.CRITICAL, 21), (logging.ERROR, 17), (logging.WARNING, 13), (logging.INFO, 9), (logging.DEBUG, 5))
    for floor, first in bands:
        if levelno >= floor:
            return first + min(levelno - floor, 3)
    return 5


def trace_id_of(correlation_id: str | None, trace: tuple[str, str] | None) -> str | None:
    """The request's W3C trace id, else the correlation id when it is one (32 hex digits, or a UUID)."""
    if trace is not None:
        return trace[0]
    if correlation_id is None:
        return None
    candidate = correlation_id.replace("-", "").lower() if len(correlation_id) == 36 else correlation_id.lower()
    return candidate if _HEX32.match(candidate) and candidate != "0" * 32 else None


def to_otel(
    obj: dict[str, Any], *, record: logging.LogRecord, trace: tuple[str, str] | None, service_name: str,
    redactor: Redactor,
) -> dict[str, Any]:
    """The OpenTelemetry log data model, with the snake_case names an OTel collector's json parser maps."""
    attributes: dict[str, Any] = {"event.name": obj["event"], "log.logger": obj["logger"]}
    if obj["correlation_id"] is not None:
        attributes["genesis.correlation_id"] = obj["correlation_id"]
    if obj["request_id"] is not None:
        attributes["genesis.request_id"] = obj["request_id"]
    user = obj["user"]
    own = _extras(obj)
    if obj["logger"] == ACCESS_LOGGER:
        for ours, theirs in (("method", "http.request.method"), ("route", "http.route"), ("path", "url.path"),
                             ("status", "http.response.status_code"), ("client_ip", "client.address")):
            if ours in own:
                attributes[theirs] = own.pop(ours)
        if user is None and isinstance(own.get("actor"), str):
            user = own.pop("actor")
    if user is not None:
        attributes["user.name"] = user
    error = _error(record, redactor)
    if error is not None:
        attributes["exception.type"], attributes["exception.message"] = error
    if "exception" in obj:
        attributes["exception.stacktrace"] = obj["exception"]
    if "stack" in obj:
        own["stack"] = obj["stack"]
    for key, value in own.items():
        attributes[f"genesis.{key}"] = value
    out: dict[str, Any] = {
        "timestamp": round(record.created * 1_000_000) * 1000,  # ns; record.created is a float: µs are exact
        "observed_timestamp": time.time_ns(),
        "severity_text": obj["level"],
        "severity_number": severity_number(record.levelno),
        "body": obj["message"],
    }
    trace_id = trace_id_of(obj["correlation_id"], trace)
    if trace_id is not None:
        out["trace_id"] = trace_id
    if trace is not None:
        out["span_id"] = trace[1]
    out["attributes"] = attributes
    out["resource"] = {"service.name": service_name, "process.pid": obj["pid"]}
    out["instrumentation_scope"] = {"name": obj["logger"]}
    return out


def _json(obj: dict[str, Any], **_: Any) -> dict[str, Any]:
    return obj


LAYOUTS: Final[dict[str, Callable[..., dict[str, Any]]]] = {"json": _json, "ecs": to_ecs, "otel": to_otel}
