"""One partition-stream entry as the consumer sees it, and helpers about it.

An entry carries the envelope and, once it went through the retry path, its
attempt history (fields set by :meth:`~notifactor.ports.dispatch.DispatchBus.ack_and_retry_later`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import attrs
import msgspec

from notifactor.adapters.redis_dispatch import (
    ATTEMPTS_FIELD,
    DEAD_REASON_FIELD,
    DEFERRALS_FIELD,
    DEFERRED_MS_FIELD,
    FIRST_ATTEMPT_FIELD,
    LAST_ERROR_FIELD,
    ROUTED_TO_FIELD,
)
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import DlqReason
from notifactor.domain.envelope import Envelope, trace_id_of
from notifactor.domain.notification import DeliveryUpdate
from notifactor.ports.dispatch import StreamEntry

MAX_ERROR_CHARS = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


def trace_id_or_none(traceparent: str) -> str | None:
    """The trace id of a ``traceparent``; None when it is not one."""
    try:
        return trace_id_of(traceparent)
    except IndexError:
        return None


def log_fields(envelope: Envelope, partition: int) -> dict[str, object]:
    """Context for a log line about one notification (JSON fields, never its content)."""
    return {
        "tenant_id": envelope.tenant_id,
        "notification_id": envelope.id,
        "trace_id": trace_id_or_none(envelope.traceparent),
        "partition": partition,
    }


def error_text(error: BaseException) -> str:
    """``Type: message``, cut to :data:`MAX_ERROR_CHARS`."""
    text = f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_CHARS]


def delivery_update(
    envelope: Envelope, state: DeliveryState, attempts: int, last_error: str | None = None
) -> DeliveryUpdate:
    """A state change of ``envelope``'s delivery to its recipient, stamped now."""
    return DeliveryUpdate(
        tenant_id=envelope.tenant_id,
        notification_id=envelope.id,
        recipient_id=envelope.user_id,
        created_at=envelope.accepted_at,
        state=state,
        event_time=utc_now(),
        attempts=attempts,
        last_error=last_error,
    )


@attrs.frozen(kw_only=True)
class AttemptHistory:
    """Attempts an entry carries from earlier tries (fields set by the retry path)."""

    attempts: int = 0
    first_attempt_ms: int | None = None
    last_error: str = ""
    dead_reason: DlqReason | None = None
    deferrals: int = 0
    deferred_ms: int = 0
    routed_to: frozenset[str] = frozenset()

    @classmethod
    def of(cls, fields: Mapping[str, bytes]) -> AttemptHistory:
        """The history in ``fields``; a field that does not parse takes its default alone.

        An entry fresh from the gateway carries no history field (the common
        case, once per notification): it gets the shared :data:`NO_HISTORY`.
        """
        if fields.keys().isdisjoint(HISTORY_FIELDS):
            return NO_HISTORY
        first = _count(fields, FIRST_ATTEMPT_FIELD, 0)
        dead = fields.get(DEAD_REASON_FIELD)
        try:
            dead_reason = DlqReason(dead.decode()) if dead else None
        except ValueError:
            dead_reason = None
        return cls(
            attempts=_count(fields, ATTEMPTS_FIELD, 0),
            first_attempt_ms=first or None,
            last_error=fields.get(LAST_ERROR_FIELD, b"").decode(errors="replace"),
            dead_reason=dead_reason,
            deferrals=_count(fields, DEFERRALS_FIELD, 0),
            deferred_ms=_count(fields, DEFERRED_MS_FIELD, 0),
            routed_to=_gateways(fields.get(ROUTED_TO_FIELD)),
        )

    def fields(self) -> dict[str, bytes]:
        """The stream fields that carry this history (the reverse of :meth:`of`)."""
        fields = {
            ATTEMPTS_FIELD: str(self.attempts).encode(),
            LAST_ERROR_FIELD: self.last_error.encode(errors="replace"),
        }
        if self.first_attempt_ms is not None:
            fields[FIRST_ATTEMPT_FIELD] = str(self.first_attempt_ms).encode()
        if self.deferrals:
            fields[DEFERRALS_FIELD] = str(self.deferrals).encode()
            fields[DEFERRED_MS_FIELD] = str(self.deferred_ms).encode()
        if self.routed_to:
            fields[ROUTED_TO_FIELD] = msgspec.json.encode(sorted(self.routed_to))
        if self.dead_reason is not None:
            fields[DEAD_REASON_FIELD] = self.dead_reason.value.encode()
        return fields


def _gateways(raw: bytes | None) -> frozenset[str]:
    """A JSON list of gateway ids; empty when missing or not one."""
    if not raw:
        return frozenset()
    try:
        return frozenset(msgspec.json.decode(raw, type=list[str]))
    except (msgspec.DecodeError, msgspec.ValidationError):
        return frozenset()


#: Every field :meth:`AttemptHistory.fields` may write.
HISTORY_FIELDS = frozenset(
    {
        ATTEMPTS_FIELD,
        LAST_ERROR_FIELD,
        FIRST_ATTEMPT_FIELD,
        DEFERRALS_FIELD,
        DEFERRED_MS_FIELD,
        ROUTED_TO_FIELD,
        DEAD_REASON_FIELD,
    }
)
#: The history of an entry no attempt has been made on.
NO_HISTORY = AttemptHistory()


def _count(fields: Mapping[str, bytes], name: str, default: int) -> int:
    """A non-negative integer field; ``default`` when missing or not one."""
    raw = fields.get(name)
    if raw is None:
        return default
    try:
        return max(0, int(raw))
    except ValueError:
        return default


@attrs.frozen(kw_only=True)
class DecodedEntry:
    """A decoded entry: the stream entry, its envelope and its attempt history."""

    entry: StreamEntry
    envelope: Envelope
    history: AttemptHistory

    @property
    def attempt(self) -> int:
        """The number of the attempt being made now."""
        return self.history.attempts + 1
