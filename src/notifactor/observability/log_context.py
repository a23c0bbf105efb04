"""Per-request log fields: bound once, added to every log line of that request.

The gateway opens a :func:`log_context` around each request; code that learns
the tenant, the notification id or the trace id calls :func:`bind_log_fields`,
and :class:`ContextFieldsFilter` (installed by ``configure_logging``) copies
them onto every record logged in that task, including the access log line.
Only names in ``CONTEXT_FIELDS`` of :mod:`.logging` are ever written out, so
binding something else has no effect on the output.

The fields live in a :class:`contextvars.ContextVar`, which Trio copies into
each new task: tasks started during a request see the fields bound so far.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token

from opentelemetry import trace

_FIELDS: ContextVar[dict[str, object] | None] = ContextVar("notifactor_log_fields", default=None)


class LogContext:
    """A fresh set of bound fields for the duration of a ``with`` block.

    A class rather than a generator context manager: the gateway opens one
    per request, and this costs about a third as much.
    """

    __slots__ = ("_token",)

    _token: Token[dict[str, object] | None]

    def __enter__(self) -> dict[str, object]:
        fields: dict[str, object] = {}
        self._token = _FIELDS.set(fields)
        return fields

    def __exit__(self, *exc_info: object) -> None:
        _FIELDS.reset(self._token)


def log_context() -> LogContext:
    """A fresh set of bound fields for the duration of the block."""
    return LogContext()


def bind_log_fields(**fields: object) -> None:
    """Add fields (None values are ignored) to the current context, if there is one."""
    current = _FIELDS.get()
    if current is not None:
        current.update((name, value) for name, value in fields.items() if value is not None)


def bound_log_fields() -> dict[str, object]:
    """A copy of the fields bound in the current context."""
    return dict(_FIELDS.get() or {})


class ContextFieldsFilter(logging.Filter):
    """Adds the bound fields, and the current span's trace id, to each record.

    Fields the log call passed with ``extra=`` win over bound ones.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _FIELDS.get()
        if fields:
            for name, value in fields.items():
                if name not in record.__dict__:
                    setattr(record, name, value)
        if "trace_id" not in record.__dict__:
            span_context = trace.get_current_span().get_span_context()
            if span_context.is_valid:
                record.trace_id = format(span_context.trace_id, "032x")
        return True
