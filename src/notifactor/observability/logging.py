"""Structured logs: JSON lines for machines, a console format for people.

Fields beyond the message come from ``extra={...}`` on the log call, or from
the request's bound fields (:mod:`.log_context`: tenant, notification id,
trace id); only the names in ``CONTEXT_FIELDS`` are copied, so nothing a
caller attaches by accident (a token, a notification body) reaches the output.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

import msgspec

from notifactor.observability.log_context import ContextFieldsFilter

CONTEXT_FIELDS = (
    "tenant_id",
    "notification_id",
    "trace_id",
    "user_id",
    "session_id",
    "child_id",
    "supervisor_id",
    "reason",
    "partition",
    "event",
    "method",
    "route",
    "status",
    "duration_ms",
)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, with the instance id on every line.

    Runs on the event loop for every line (the access log writes one per
    request), so it is kept cheap: the timestamp's date and time are formatted
    once per second, and the line is encoded by msgspec.
    """

    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self._instance_id = instance_id
        # (second, its text), replaced as one value: records from other
        # threads never pair a second with another second's text.
        self._second: tuple[int, str] = (-1, "")

    def timestamp(self, created: float) -> str:
        """``created`` as ISO 8601 UTC with milliseconds (``…T12:00:01.234+00:00``)."""
        second = int(created)
        cached, text = self._second
        if second != cached:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        millis = min(int((created - second) * 1000), 999)
        return f"{text}.{millis:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": self.timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "instance_id": self._instance_id,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for name in CONTEXT_FIELDS:
            value = fields.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = self.formatException(record.exc_info)
        try:
            return _ENCODER.encode(line).decode("utf-8", "surrogateescape")
        except (TypeError, ValueError, OverflowError):  # a value msgspec cannot encode
            return json.dumps(line, default=str, ensure_ascii=False)


def _as_text(value: object) -> str:
    return str(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_as_text)


class ConsoleFormatter(logging.Formatter):
    """Readable lines for development: time, level, logger, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        context = " ".join(
            f"{name}={record.__dict__[name]}"
            for name in CONTEXT_FIELDS
            if record.__dict__.get(name) is not None
        )
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if context:
            text = f"{text} [{context}]"
        if record.exc_info and record.exc_info[0] is not None:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def configure_logging(
    *,
    log_format: Literal["json", "console"],
    level: str,
    instance_id: str,
    stream: TextIO | None = None,
) -> None:
    """Install one handler on the root logger (replacing any earlier one)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter = (
        JsonLineFormatter(instance_id) if log_format == "json" else ConsoleFormatter()
    )
    handler.setFormatter(formatter)
    handler.addFilter(ContextFieldsFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Neither format writes the thread, the process or the source line: do not
    # collect them for every record (the logging HOWTO's "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    # The Cassandra driver is chatty at INFO about pool and topology events;
    # coredis logs its own retries there (a script reloaded after NOSCRIPT).
    for chatty in ("cassandra", "coredis"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
