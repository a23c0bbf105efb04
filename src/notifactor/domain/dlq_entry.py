"""Entries of the dead-letter stream ``notifactor:dlq``.

Each entry has two fields: ``entry`` (:data:`DLQ_ENTRY_FIELD`), the
msgspec-JSON encoding of :class:`DlqEntry`, and ``envelope``
(:data:`notifactor.domain.envelope.ENVELOPE_FIELD`), the original stream
payload byte for byte — kept even when it is not a valid envelope, so an
operator can see what was sent, and replayed unchanged when it is.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

DLQ_ENTRY_FIELD = "entry"


class DlqReason(enum.StrEnum):
    """Why an entry was dead-lettered."""

    MALFORMED = "malformed"
    """The stream entry is not a valid envelope (never retried)."""
    POISON = "poison"
    """The entry was delivered to consumers more than ``max_deliveries`` times
    without being acknowledged (it keeps crashing or stalling consumers)."""
    EXHAUSTED = "exhausted"
    """Every attempt the tenant policy allows failed."""


class DlqEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What the DLQ records about one dead letter (SPEC §6).

    Attributes:
        reason: a :class:`DlqReason` value.
        notification_id, tenant_id, user_id, channel: from the envelope;
            ``None`` for a malformed entry that does not carry them.
        attempts: delivery attempts made.
        last_error: the error of the last attempt.
        first_attempt_at, last_attempt_at: aware UTC times.
        trace_id: from the envelope's ``traceparent``.
        source_stream, source_id: where the entry was read.
        dead_at: when it was dead-lettered.
    """

    reason: str
    notification_id: str | None
    tenant_id: str | None
    user_id: str | None = None
    channel: str | None = None
    attempts: int
    last_error: str
    first_attempt_at: datetime
    last_attempt_at: datetime
    trace_id: str | None
    source_stream: str
    source_id: str
    dead_at: datetime


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(DlqEntry)


def encode_dlq_entry(entry: DlqEntry) -> bytes:
    """The bytes of the ``entry`` field."""
    return _ENCODER.encode(entry)


def decode_dlq_entry(raw: bytes | str) -> DlqEntry:
    """Decode an ``entry`` field."""
    return _DECODER.decode(raw)
