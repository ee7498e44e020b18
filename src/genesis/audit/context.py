"""Request context carried in contextvars: correlation id, request id, user.

contextvars follow ``await``, ``asyncio.create_task`` and ``asyncio.to_thread``
by themselves. A raw ``threading.Thread`` or executor does not copy them: start
it with ``contextvars.copy_context().run`` (see :func:`run_with_context`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from genesis.audit.events import uuid7

P = ParamSpec("P")
R = TypeVar("R")

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("genesis_correlation_id", default=None)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("genesis_request_id", default=None)
user_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("genesis_user", default=None)
# The W3C trace context a request arrived with: (trace id, parent span id), 32 and 16 lower-case hex digits.
trace_var: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("genesis_trace", default=None)


def new_correlation_id() -> str:
    """A fresh, time-ordered correlation id (a UUIDv7 string)."""
    return uuid7()


def get_correlation_id() -> str | None:
    return correlation_id_var.get()


@contextmanager
def bind_correlation(correlation_id: str | None = None) -> Iterator[str]:
    """Bind a correlation id (new unless given) for the block, e.g. one batch job."""
    value = correlation_id or new_correlation_id()
    token = correlation_id_var.set(value)
    try:
        yield value
    finally:
        correlation_id_var.reset(token)


@contextmanager
def bind_request(
    *,
    request_id: str | None,
    correlation_id: str | None = None,
    user: str | None = None,
    trace: tuple[str, str] | None = None,
) -> Iterator[None]:
    """Bind the ids of one request (the correlation id defaults to the request id).

    Args:
        request_id: this request's id.
        correlation_id: the id shared with the caller's other requests.
        user: the principal, when already known.
        trace: ``(trace_id, parent_span_id)`` of a valid ``traceparent`` header (OTel log lines carry them).
    """
    tokens = (
        request_id_var.set(request_id),
        correlation_id_var.set(correlation_id or request_id or new_correlation_id()),
        user_var.set(user),
    )
    trace_token = trace_var.set(trace)
    try:
        yield
    finally:
        trace_var.reset(trace_token)
        user_var.reset(tokens[2])
        correlation_id_var.reset(tokens[1])
        request_id_var.reset(tokens[0])


def set_user(user: str | None) -> contextvars.Token[str | None]:
    """Record the authenticated principal for the rest of the current context."""
    return user_var.set(user)


def run_with_context(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``func`` to run in a copy of the caller's context (for raw threads)."""
    ctx = contextvars.copy_context()

    def runner(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.run(func, *args, **kwargs)

    return runner
