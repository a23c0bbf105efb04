"""WebSocket frames (SPEC §5): parsing what clients send, encoding what we send.

Pure and synchronous. A client frame is one JSON object with a ``type``;
:func:`parse_client_frame` turns raw text into one of the frame classes or a
:class:`FrameProblem` (the ``error`` frame the session answers with, keeping
the socket open). Unknown extra fields in a client frame are ignored, so
clients may add their own correlation fields.

Server frames are encoded with msgspec; a notification frame is encoded once
per routed message and the same text is written to every session of the user.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

import attrs
import msgspec

from notifactor.domain.cursor import CursorKind, InvalidCursorError, Position, decode_cursor
from notifactor.domain.identifiers import CHANNEL
from notifactor.domain.notification import InboxEntry
from notifactor.domain.routing import RoutedMessage

MAX_CHANNELS_PER_FRAME = 100
MAX_ID_CHARS = 128


@attrs.frozen(kw_only=True)
class Subscribe:
    channels: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Unsubscribe:
    channels: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Ack:
    id: str


@attrs.frozen(kw_only=True)
class Resume:
    """``since`` is the client's cursor text; ``position`` its decoded form."""

    since: str
    position: Position


@attrs.frozen(kw_only=True)
class Ping:
    pass


ClientFrame: TypeAlias = Subscribe | Unsubscribe | Ack | Resume | Ping


@attrs.frozen(kw_only=True)
class FrameProblem:
    """Why a client frame was refused: becomes ``{"type":"error",...}``."""

    code: str
    message: str


_JSON = msgspec.json.Decoder()


def parse_client_frame(raw: str | bytes) -> ClientFrame | FrameProblem:
    """The frame ``raw`` encodes, or the problem with it (never raises)."""
    if isinstance(raw, bytes):
        return FrameProblem(code="invalid_frame", message="frames must be JSON text, not binary")
    try:
        value = _JSON.decode(raw)
    except msgspec.DecodeError:
        return FrameProblem(code="invalid_json", message="the frame is not valid JSON")
    if not isinstance(value, dict):
        return FrameProblem(code="invalid_frame", message="a frame must be a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str):
        return FrameProblem(code="invalid_frame", message="a frame needs a string 'type'")
    match kind:
        case "subscribe" | "unsubscribe":
            channels = _channels(value.get("channels"))
            if isinstance(channels, FrameProblem):
                return channels
            if kind == "subscribe":
                return Subscribe(channels=channels)
            return Unsubscribe(channels=channels)
        case "ack":
            ident = value.get("id")
            if not isinstance(ident, str) or not 0 < len(ident) <= MAX_ID_CHARS:
                return _invalid("id", f"must be a notification id (1..{MAX_ID_CHARS} chars)")
            return Ack(id=ident)
        case "resume":
            since = value.get("since")
            if not isinstance(since, str) or not since:
                return _invalid("since", "must be a cursor from a notification frame")
            try:
                position = decode_cursor(CursorKind.INBOX, since)
            except InvalidCursorError:
                return FrameProblem(
                    code="invalid_cursor", message="'since' is not a cursor this server issued"
                )
            return Resume(since=since, position=position)
        case "ping":
            return Ping()
        case _:
            return FrameProblem(code="unknown_type", message=f"unknown frame type {kind[:64]!r}")


def _invalid(field: str, reason: str) -> FrameProblem:
    return FrameProblem(code="invalid_field", message=f"{field}: {reason}")


def _channels(value: Any) -> tuple[str, ...] | FrameProblem:
    if not isinstance(value, list) or not value:
        return _invalid("channels", "must be a non-empty array of channel names")
    if len(value) > MAX_CHANNELS_PER_FRAME:
        return _invalid("channels", f"at most {MAX_CHANNELS_PER_FRAME} per frame")
    for channel in value:
        if not isinstance(channel, str) or not CHANNEL.fullmatch(channel):
            return _invalid("channels", f"each must match {CHANNEL.pattern}")
    return tuple(dict.fromkeys(value))


# --- server frames -----------------------------------------------------------


class NotificationFrame(msgspec.Struct, kw_only=True, tag="notification", tag_field="type"):
    id: str
    channel: str
    content: str
    priority: str
    metadata: dict[str, Any]
    created_at: str
    cursor: str


_ENCODER = msgspec.json.Encoder()


def format_created_at(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``, as the REST API writes it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def notification_frame(
    *,
    id: str,
    channel: str,
    content: str,
    priority: str,
    metadata: dict[str, Any],
    created_at: datetime,
    cursor: str,
) -> str:
    """The text of a ``notification`` frame."""
    frame = NotificationFrame(
        id=id,
        channel=channel,
        content=content,
        priority=priority,
        metadata=metadata,
        created_at=format_created_at(created_at),
        cursor=cursor,
    )
    return _ENCODER.encode(frame).decode()


def routed_notification_frame(message: RoutedMessage) -> str:
    """The text of the ``notification`` frame of a routed message."""
    return notification_frame(
        id=message.id,
        channel=message.channel,
        content=message.content,
        priority=message.priority,
        metadata=message.metadata,
        created_at=message.created_at,
        cursor=message.cursor,
    )


def stored_notification_frame(entry: InboxEntry) -> str:
    """The text of the ``notification`` frame of a stored notification (a replay, a catch-up)."""
    notification = entry.notification
    return notification_frame(
        id=notification.id,
        channel=notification.channel,
        content=notification.content,
        priority=notification.priority,
        metadata=notification.metadata,
        created_at=notification.created_at,
        cursor=entry.cursor,
    )


def welcome_frame(*, session_id: str, tenant_id: str, user_id: str, heartbeat_s: float) -> str:
    heartbeat: float | int = int(heartbeat_s) if heartbeat_s == int(heartbeat_s) else heartbeat_s
    return _encode(
        {
            "type": "welcome",
            "session_id": session_id,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "heartbeat_s": heartbeat,
        }
    )


def subscribed_frame(channels: list[str]) -> str:
    return _encode({"type": "subscribed", "channels": channels})


def resumed_frame(count: int) -> str:
    return _encode({"type": "resumed", "count": count})


def error_frame(problem: FrameProblem) -> str:
    return _encode({"type": "error", "code": problem.code, "message": problem.message})


PONG_FRAME = '{"type":"pong"}'


def _encode(value: dict[str, Any]) -> str:
    return _ENCODER.encode(value).decode()
