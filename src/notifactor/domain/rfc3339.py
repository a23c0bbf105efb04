"""RFC 3339 timestamps as the API writes and reads them (always UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_rfc3339(moment: datetime) -> str:
    """``2026-11-03T12:00:00.123456Z``: UTC, microseconds, ``Z`` suffix."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    """An aware datetime from RFC 3339 text; an offset (or ``Z``) is required.

    Raises:
        ValueError: not RFC 3339 with an offset, or out of range once in UTC
            (``0001-01-01T00:00:00+01:00`` is year 0 in UTC).
    """
    if "T" not in text.upper() or len(text) < 20:
        raise ValueError("must be an RFC 3339 date-time")
    moment = datetime.fromisoformat(
        text.upper().replace("Z", "+00:00") if text[-1] in "zZ" else text
    )
    if moment.tzinfo is None:
        raise ValueError("must carry a UTC offset or Z")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None
