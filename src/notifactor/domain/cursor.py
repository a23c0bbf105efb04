"""Opaque keyset cursors for every time-ordered listing.

A cursor names a position in a listing's order, never an offset: rows are
placed by immutable keys (creation time, id), so following cursors visits each
row exactly once even while statuses change. Cursors are URL-safe text; their
content is not part of the API and may change between versions (the leading
version tag lets a future format reject old ones cleanly).
"""

from __future__ import annotations

import base64
import binascii
import enum
from datetime import datetime

import attrs
import msgspec

from notifactor.domain.notification import Notification
from notifactor.domain.timestamps import to_us

_VERSION = "c1"
#: A position later than every stored row: where a listing without bounds starts.
END_US = (1 << 62) - 1
TIME_US_LIMIT = 1 << 63
"""Positions lie in ``0 <= time_us < TIME_US_LIMIT`` (a signed 64-bit column of every store)."""


class CursorKind(enum.StrEnum):
    """Which listing a cursor belongs to; a cursor of one kind is refused by another."""

    INBOX = "i"
    DELIVERIES = "d"
    AUDIT = "a"
    DLQ = "q"


class InvalidCursorError(ValueError):
    """A cursor that this version did not produce, or produced for another listing."""


@attrs.frozen(kw_only=True, order=True)
class Position:
    """A point in a time-ordered listing: (time, key, sub-key), compared as a tuple.

    Attributes:
        time_us: the row's ordering time in epoch microseconds.
        key: the row's id (notification id, audit event id).
        sub_key: a further tie-breaker (recipient id), ``""`` when unused.
    """

    time_us: int
    key: str
    sub_key: str = ""

    def as_tuple(self) -> tuple[int, str, str]:
        return (self.time_us, self.key, self.sub_key)


def encode_cursor(kind: CursorKind, position: Position) -> str:
    """The opaque text of ``position`` in a listing of ``kind``."""
    raw = msgspec.json.encode(
        [_VERSION, kind.value, position.time_us, position.key, position.sub_key]
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(kind: CursorKind, cursor: str) -> Position:
    """The position that :func:`encode_cursor` encoded.

    Raises:
        InvalidCursorError: ``cursor`` is not a cursor of ``kind`` from this version,
            or its position is out of range (``time_us`` outside ``0..2**63 - 1``).
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        version, got_kind, time_us, key, sub_key = msgspec.json.decode(
            raw, type=tuple[str, str, int, str, str]
        )
    except (binascii.Error, UnicodeEncodeError, ValueError, msgspec.DecodeError) as error:
        raise InvalidCursorError("malformed cursor") from error
    if version != _VERSION or got_kind != kind.value:
        raise InvalidCursorError("cursor does not belong to this listing")
    if not 0 <= time_us < TIME_US_LIMIT:
        raise InvalidCursorError("cursor position out of range")
    return Position(time_us=time_us, key=key, sub_key=sub_key)


def inbox_cursor(notification_id: str, created_at_us: int) -> str:
    """The resume cursor sent with a notification frame (SPEC §5 ``cursor``)."""
    return encode_cursor(CursorKind.INBOX, Position(time_us=created_at_us, key=notification_id))


def cursor_for(notification: Notification) -> str:
    """The resume cursor of ``notification`` (what a WebSocket frame carries)."""
    return inbox_cursor(notification.id, notification.created_at_us)


def newest_first_start(kind: CursorKind, cursor: str | None, until: datetime | None) -> Position:
    """Where a newest-first page starts (exclusive): the earlier of the cursor and ``until``.

    Raises:
        InvalidCursorError: ``cursor`` is not a cursor of ``kind``.
    """
    upper = Position(time_us=END_US, key="")
    if cursor is not None:
        upper = decode_cursor(kind, cursor)
    if until is not None:
        upper = min(upper, Position(time_us=to_us(until), key=""))
    return upper


def inbox_start(cursor: str | None) -> Position:
    """Where an oldest-first inbox read starts (exclusive): the cursor, or before every row."""
    if cursor is None:
        return Position(time_us=-1, key="")
    return decode_cursor(CursorKind.INBOX, cursor)
