"""The message the dispatcher writes to a gateway's delivery stream.

For every live gateway instance that holds a session of the recipient, the
dispatcher appends one entry to ``notifactor:gw:{gateway_id}`` with a single
field, ``message`` (:data:`ROUTED_FIELD`), holding the msgspec-JSON encoding of
:class:`RoutedMessage`. The gateway's WebSocket edge reads its own stream and
writes the notification to each of the recipient's sessions subscribed to the
channel, as the SPEC §5 ``notification`` frame: every frame field is here, so
the edge never reads storage on the live path.

``schema_version`` lets an edge skip (and log) messages of a version it does
not know; new optional fields may be added without a bump. Delivery is
at-least-once: the same ``id`` may arrive twice (a retry, a takeover after a
crash); the edge drops an id a session has already been sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from notifactor.domain.cursor import inbox_cursor
from notifactor.domain.envelope import Envelope
from notifactor.domain.timestamps import to_us

ROUTED_SCHEMA_VERSION = 1
ROUTED_FIELD = "message"


class RoutedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One notification bound for the sessions of one user on one gateway.

    Attributes:
        schema_version: :data:`ROUTED_SCHEMA_VERSION`.
        id, tenant_id, user_id, channel, content, priority, metadata: the notification.
        created_at: acceptance time (RFC 3339 UTC in JSON); a time without an
            offset is refused when decoding (the entry is skipped).
        cursor: the resume cursor of this notification (SPEC §5 ``cursor``).
        attempt: the delivery attempt (1 for the first).
        traceparent: W3C trace context of the accepting request.
    """

    schema_version: int = ROUTED_SCHEMA_VERSION
    id: str
    tenant_id: str
    user_id: str
    channel: str
    content: str
    priority: str
    metadata: dict[str, Any]
    created_at: Annotated[datetime, msgspec.Meta(tz=True)]
    cursor: str
    attempt: int
    traceparent: str


def routed_message(envelope: Envelope, attempt: int) -> RoutedMessage:
    """The routed message of ``envelope`` on its ``attempt``-th delivery attempt."""
    return RoutedMessage(
        id=envelope.id,
        tenant_id=envelope.tenant_id,
        user_id=envelope.user_id,
        channel=envelope.channel,
        content=envelope.content,
        priority=envelope.priority,
        metadata=dict(envelope.metadata),
        created_at=envelope.accepted_at,
        cursor=inbox_cursor(envelope.id, to_us(envelope.accepted_at)),
        attempt=attempt,
        traceparent=envelope.traceparent,
    )


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(RoutedMessage)


def encode_routed(message: RoutedMessage) -> bytes:
    """The bytes of the ``message`` field."""
    return _ENCODER.encode(message)


def decode_routed(raw: bytes | str) -> RoutedMessage:
    """Decode a ``message`` field (raises ``msgspec.DecodeError``/``ValidationError``)."""
    return _DECODER.decode(raw)
