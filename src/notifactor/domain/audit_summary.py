"""Folding the gateway's per-request audit notes into tenant audit events.

Every accepted request and every request rejected for auth or policy reasons
becomes an :class:`AuditNote`. Writing one row per note would put a storage
write behind every request and let a client that hammers a rate limit flood
its tenant's log, so notes are summarised per window: notes with the same
:attr:`AuditNote.key` (tenant, event type, subject, route, status, reason)
become one event carrying the count, the first and last time, and, for
accepted notes, every notification id. Nothing is dropped: an event holds at
most ``max_ids`` ids and the rest go into further events.

Pure: no clock, no I/O. The event ids come from the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import attrs

from notifactor.domain.audit import AuditEvent
from notifactor.domain.rfc3339 import format_rfc3339

#: Event type of a summary of accepted requests.
ACCEPTED = "notifications.accepted"
#: Event type of a summary of rejected requests.
REJECTED = "request.rejected"

AuditKey = tuple[str, str, str, str, int, str]


@attrs.frozen(kw_only=True)
class AuditNote:
    """What the gateway noted about one request.

    Attributes:
        tenant_id: the authenticated tenant (or the tenant of a token whose
            signature was good but whose claims were not).
        event_type: :data:`ACCEPTED` or :data:`REJECTED`.
        subject: the token's ``sub`` ("" when the token carried none).
        route: the route name (``notifications``, ``batch``, ...).
        status: the HTTP status of the outcome (202, 401, 403, 429, 503).
        reason: why it was rejected ("" for accepted).
        at: when the gateway decided.
        ids: the notification ids accepted (new ones).
        duplicates: ids answered from an earlier request with the same
            ``Idempotency-Key``.
        count: how many requests or batch items this note stands for.
    """

    tenant_id: str
    event_type: str
    subject: str
    route: str
    status: int
    reason: str = ""
    at: datetime
    ids: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    count: int = 1

    @property
    def key(self) -> AuditKey:
        return (self.tenant_id, self.event_type, self.subject, self.route, self.status, self.reason)


@attrs.define
class _Summary:
    first: AuditNote
    first_at: datetime
    last_at: datetime
    count: int = 0
    ids: list[str] = attrs.field(factory=list)
    duplicates: list[str] = attrs.field(factory=list)


def summarize(
    notes: Iterable[AuditNote], *, max_ids: int, new_id: Callable[[], str]
) -> list[AuditEvent]:
    """One or more events per key, in order of each key's first note.

    An event's time (and ``first_at``) is the earliest note time of its key;
    requests finish in any order, so that need not be the first note queued.

    Args:
        notes: the window's notes, in arrival order.
        max_ids: most notification ids (new and duplicate together) in one
            event; a key with more is split, the counts split with its ids.
        new_id: makes each event's id.
    """
    if max_ids < 1:
        raise ValueError("max_ids must be at least 1")
    summaries: dict[AuditKey, _Summary] = {}
    for note in notes:
        summary = summaries.get(note.key)
        if summary is None:
            summary = summaries[note.key] = _Summary(first=note, first_at=note.at, last_at=note.at)
        summary.count += note.count
        summary.first_at = min(summary.first_at, note.at)
        summary.last_at = max(summary.last_at, note.at)
        summary.ids.extend(note.ids)
        summary.duplicates.extend(note.duplicates)
    events: list[AuditEvent] = []
    for summary in summaries.values():
        events.extend(_events_of(summary, max_ids, new_id))
    return events


def _events_of(summary: _Summary, max_ids: int, new_id: Callable[[], str]) -> list[AuditEvent]:
    tagged = [(i, False) for i in summary.ids] + [(i, True) for i in summary.duplicates]
    chunks = [tagged[start : start + max_ids] for start in range(0, len(tagged), max_ids)] or [[]]
    # Requests without ids (rejections) are all counted in the first event;
    # with ids, each event counts the ids it carries.
    without_ids = summary.count - len(tagged)
    first = summary.first
    events = []
    for index, chunk in enumerate(chunks):
        count = len(chunk) + (max(0, without_ids) if index == 0 else 0)
        metadata: dict[str, object] = {
            "subject": first.subject,
            "route": first.route,
            "status": first.status,
            "count": count,
            "first_at": format_rfc3339(summary.first_at),
            "last_at": format_rfc3339(summary.last_at),
        }
        if first.reason:
            metadata["reason"] = first.reason
        if first.event_type == ACCEPTED:
            metadata["notification_ids"] = [i for i, duplicate in chunk if not duplicate]
            metadata["duplicate_ids"] = [i for i, duplicate in chunk if duplicate]
        events.append(
            AuditEvent(
                tenant_id=first.tenant_id,
                event_id=new_id(),
                event_time=summary.first_at,
                event_type=first.event_type,
                metadata=metadata,
            )
        )
    return events
