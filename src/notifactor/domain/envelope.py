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
import re
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
#: A W3C trace-context ``traceparent`` of version 00.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


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
    carried = parse_traceparent(parent.strip().lower()) if parent is not None else None
    if carried is not None:
        trace_id, _, flags = carried
        return f"00-{trace_id:032x}-{_span_id()}-{flags:02x}"
    # Trace ids need to be unique, not secret: the interpreter's generator,
    # as the OpenTelemetry SDK uses, without a system call per id.
    return f"00-{random.getrandbits(128) or 1:032x}-{_span_id()}-01"


def parse_traceparent(text: str | None) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) of a version-00 ``traceparent``.

    None when absent or invalid: another version, upper-case or malformed
    hex, or an all-zero id. Surrounding spaces and tabs are ignored.
    """
    if not text:
        return None
    # 55 characters is the exact form: nothing to strip.
    match = _TRACEPARENT.fullmatch(text if len(text) == 55 else text.strip(" \t"))
    if match is None:
        return None
    trace_hex, span_hex, flags_hex = match.groups()
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, int(flags_hex, 16)


def _span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def trace_id_of(traceparent: str) -> str:
    """The 32-hex trace id inside a ``traceparent``."""
    return traceparent.split("-")[1]
