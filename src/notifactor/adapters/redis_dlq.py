"""Reading the dead-letter stream and re-enqueueing its entries (for replay).

The stream (``notifactor:dlq``) is written by the partition consumers (see
:mod:`notifactor.adapters.redis_dispatch`); this module pages through it
newest first with filters, marks entries as replayed (``SET NX`` with a TTL,
so a second replay of the same dead letter is refused even while the first
one is still in flight) and appends envelopes back to their partition stream.

Every Redis call is bounded (``call_timeout_s``); a call that fails to reach
Redis or outlives its bound raises :class:`DlqUnavailable`, so a stalled or
unreachable server is an answer ("retry later"), never a hang.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import attrs
import coredis
import msgspec

from notifactor.adapters.redis_client import bounded_call
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_scripts import EvalShaScript
from notifactor.domain.dlq_entry import DLQ_ENTRY_FIELD, DlqEntry, decode_dlq_entry
from notifactor.domain.envelope import ENVELOPE_FIELD
from notifactor.domain.timestamps import to_us

_CHUNK = 200
DEFAULT_REPLAY_MARK_TTL_S = 7 * 86_400
#: Bound on one Redis call (a page of up to 200 entries, a replay step).
DEFAULT_CALL_TIMEOUT_S = 5.0


class DlqUnavailable(Exception):
    """Redis could not be reached, or did not answer a DLQ call within its bound.

    A replay step that timed out may still have been applied; replaying
    again is safe (an entry is re-enqueued at most once).
    """


# Mark a dead letter replayed (for ARGV[1] seconds) and append its envelope to
# its partition stream as a new entry, or do nothing if it is marked already.
REPLAY_ONCE_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[3])
  return 1
end
return 0
"""

#: How much later than its ``dead_at`` a dead letter may reach the stream: the
#: consumer stamps ``dead_at``, writes storage (bounded by
#: ``dead_letter_timeout_s``), then appends. An ``until`` bound scans this far
#: past ``until`` in stream time and filters on ``dead_at``.
DEAD_AT_TO_APPEND_SLACK_MS = 120_000


def append_slack_ms(dead_letter_timeout_s: float) -> int:
    """The ``until`` scan's slack for a dispatcher whose storage bound is ``dead_letter_timeout_s``.

    At least :data:`DEAD_AT_TO_APPEND_SLACK_MS`; with a longer storage bound,
    that bound plus a minute (for clock skew and the append itself).
    """
    return max(DEAD_AT_TO_APPEND_SLACK_MS, int(dead_letter_timeout_s * 1000) + 60_000)


@attrs.frozen(kw_only=True)
class DlqFilter:
    """Which dead letters an operation applies to; ``None`` matches everything.

    Attributes:
        tenant_id: only this tenant's.
        reason: only this reason (``malformed``, ``poison``, ``exhausted``).
        since, until: dead-lettered at or after ``since``, before ``until``.
        ids: only these notification ids or DLQ entry ids.
    """

    tenant_id: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: frozenset[str] | None = None

    def matches(self, stream_id: str, entry: DlqEntry) -> bool:
        if self.tenant_id is not None and entry.tenant_id != self.tenant_id:
            return False
        if self.reason is not None and entry.reason != self.reason:
            return False
        if self.since is not None and entry.dead_at < self.since:
            return False
        if self.until is not None and entry.dead_at >= self.until:
            return False
        return self.ids is None or stream_id in self.ids or entry.notification_id in self.ids


@attrs.frozen(kw_only=True)
class DlqRecord:
    """One dead letter: its DLQ stream id, what was recorded, the original payload."""

    stream_id: str
    entry: DlqEntry
    envelope: bytes | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisDeadLetterQueue:
    """The DLQ stream, for listing and replay."""

    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        keys: RedisKeys | None = None,
        replay_mark_ttl_s: int = DEFAULT_REPLAY_MARK_TTL_S,
        append_slack_ms: int = DEAD_AT_TO_APPEND_SLACK_MS,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        if not call_timeout_s > 0:
            raise ValueError("call_timeout_s must be > 0")
        self._client = client
        self.keys = keys or RedisKeys()
        self._mark_ttl_s = replay_mark_ttl_s
        self._append_slack_ms = append_slack_ms
        self._call_timeout_s = call_timeout_s
        self._replay = EvalShaScript(client, REPLAY_ONCE_LUA, "dlq_replay")

    def _bounded(self) -> AbstractContextManager[None]:
        """One Redis call: unreachable or slower than ``call_timeout_s`` is :class:`DlqUnavailable`."""
        return bounded_call(self._call_timeout_s, DlqUnavailable)

    async def page(
        self,
        where: DlqFilter,
        *,
        limit: int,
        cursor: str | None = None,
        max_scan: int = 20_000,
    ) -> tuple[list[DlqRecord], str | None]:
        """Up to ``limit`` matching records, newest first, and the cursor of the rest.

        Scans at most ``max_scan`` entries per call; a page may then hold
        fewer than ``limit`` records and still have a next cursor.

        Raises:
            ValueError: ``cursor`` is not one this method returned.
            DlqUnavailable: Redis is unreachable or too slow.
        """
        end = "+"
        if cursor is not None:
            if not is_dlq_cursor(cursor):
                raise ValueError("not a DLQ cursor")
            end = f"({cursor}"
        elif where.until is not None:
            until_ms = to_us(where.until) // 1000 + self._append_slack_ms
            if until_ms <= 0:
                return [], None  # before the first possible stream id
            end = f"({until_ms}-0"
        start = "-"
        if where.since is not None and (since_ms := to_us(where.since) // 1000) > 0:
            start = f"{since_ms}-0"
        found: list[DlqRecord] = []
        scanned = 0
        last_seen: str | None = None
        while len(found) < limit and scanned < max_scan:
            with self._bounded():
                raws: Any = await self._client.xrevrange(
                    self.keys.dlq, end=end, start=start, count=_CHUNK
                )
            if not raws:
                return found, None
            for raw in raws:
                scanned += 1
                stream_id = _text(raw.identifier)
                last_seen = stream_id
                record = _record(stream_id, raw.field_values)
                if record is not None and where.matches(stream_id, record.entry):
                    found.append(record)
                    if len(found) == limit:
                        return found, stream_id
            end = f"({last_seen}"
            if len(raws) < _CHUNK:
                return found, None
        return found, last_seen

    async def replay_once(self, stream_id: str, partition: int, envelope: bytes) -> bool:
        """Re-enqueue one dead letter unless it was replayed already; whether it was now.

        The replayed mark and the append to the partition stream (a fresh
        entry: attempts start over) are one atomic step, so no interruption
        can leave a dead letter marked replayed without its re-enqueue.
        """
        with self._bounded():
            reply = await self._replay(
                keys=[self.keys.replayed(stream_id), self.keys.stream(partition)],
                args=[self._mark_ttl_s, ENVELOPE_FIELD, envelope],
            )
        return bool(reply)

    async def was_replayed(self, stream_id: str) -> bool:
        with self._bounded():
            return bool(await self._client.exists([self.keys.replayed(stream_id)]))


def _record(stream_id: str, fields: Any) -> DlqRecord | None:
    values = {_text(k): v for k, v in fields.items()}
    raw_entry = values.get(DLQ_ENTRY_FIELD)
    if raw_entry is None:
        return None
    try:
        entry = decode_dlq_entry(raw_entry)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    envelope = values.get(ENVELOPE_FIELD)
    return DlqRecord(
        stream_id=stream_id,
        entry=entry,
        envelope=envelope if isinstance(envelope, bytes) else None,
    )


_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_UINT64_MAX = 2**64 - 1


def is_dlq_cursor(text: str) -> bool:
    """Whether ``text`` is a stream id that can end a newest-first page: ``<ms>-<seq>``.

    Both parts are ASCII decimal 64-bit unsigned integers, and the id is not
    ``0-0``: no entry comes before it, so Redis refuses it as an exclusive end.
    """
    match = _STREAM_ID.fullmatch(text)
    if match is None:
        return False
    ms, seq = int(match[1]), int(match[2])
    return ms <= _UINT64_MAX and seq <= _UINT64_MAX and (ms, seq) != (0, 0)
