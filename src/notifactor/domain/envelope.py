"""The stream entry the gateway writes and the dispatcher reads.

One accepted notification is one entry in a partition stream
(:func:`notifactor.domain.partitioning.stream_name`) with a single field,
``envelope`` (:data:`ENVELOPE_FIELD`), holding the msgspec-JSON encoding of
:class:`Envelope`. ``schema_version`` lets a dispatcher refuse (dead-letter)
entries of a version it does not know instead of misreading them; new optional
fields may be added without a version bump, since decoding ignores unknown
fields.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import msgspec

from notifactor.domain.notification import Notification

SCHEMA_VERSION = 1
ENVELOPE_FIELD = "envelope"


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted notification as it travels through the streams.

    Attributes:
        schema_version: :data:`SCHEMA_VERSION` at the time of writing.
        id: the notification id (UUIDv7 text).
        tenant_id, user_id, channel, content, priority, metadata: as posted.
        accepted_at: when the gateway accepted it (aware UTC); becomes
            ``created_at`` in storage.
        traceparent: W3C trace context of the accepting request, so the
            dispatcher continues the same trace.
        idempotency_key: the client's ``Idempotency-Key``, if any (for audit).
    """

    schema_version: int = SCHEMA_VERSION
    id: str
    tenant_id: str
    user_id: str
    channel: str
    content: str
    priority: str = "normal"
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    accepted_at: datetime
    traceparent: str
    idempotency_key: str | None = None

    def to_notification(self) -> Notification:
        """The storage record of this envelope."""
        return Notification(
            tenant_id=self.tenant_id,
            id=self.id,
            user_id=self.user_id,
            channel=self.channel,
            content=self.content,
            priority=self.priority,
            metadata=dict(self.metadata),
            created_at=self.accepted_at,
        )


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    """The bytes stored in the stream entry's ``envelope`` field."""
    return _ENCODER.encode(envelope)


def decode_envelope(raw: bytes | str) -> Envelope:
    """The envelope of a stream entry.

    Raises:
        msgspec.ValidationError, msgspec.DecodeError: not an envelope.
    """
    return _DECODER.decode(raw)


def new_traceparent(parent: str | None = None) -> str:
    """A W3C ``traceparent`` for a new span: a child of ``parent`` when it is valid.

    An invalid or absent parent starts a new trace (sampled flag set).
    """
    if parent is not None:
        parts = parent.strip().lower().split("-")
        if (
            len(parts) == 4
            and parts[0] == "00"
            and _is_hex(parts[1], 32)
            and _is_hex(parts[2], 16)
            and _is_hex(parts[3], 2)
            and parts[1] != "0" * 32
            and parts[2] != "0" * 16
        ):
            return f"00-{parts[1]}-{_span_id()}-{parts[3]}"
    # Trace ids need to be unique, not secret: the interpreter's generator,
    # as the OpenTelemetry SDK uses, without a system call per id.
    return f"00-{random.getrandbits(128) or 1:032x}-{_span_id()}-01"


def _span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def trace_id_of(traceparent: str) -> str:
    """The 32-hex trace id inside a ``traceparent``."""
    return traceparent.split("-")[1]


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)
