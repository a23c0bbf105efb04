"""The dispatcher's side of Redis: consumer groups, delivery streams, retries, DLQ.

Implements :class:`notifactor.ports.dispatch.DispatchBus` on one coredis
client (bytes responses, see :mod:`notifactor.adapters.redis_client`).

Keys (:class:`RedisKeys`, prefix ``notifactor:`` unless a test isolates itself):

* ``stream:{p}`` — partition streams (written by the gateway), consumed by the
  group :data:`DEFAULT_GROUP`.
* ``gw:{gateway_id}`` — one delivery stream per gateway instance, field
  ``message`` (:mod:`notifactor.domain.routing`). Its gateway deletes what it
  has fanned out; a stream holding ``gateway_stream_maxlen`` entries refuses
  further deliveries (the dispatcher defers them) rather than trimming unread ones.
* ``retry:{p}`` — sorted set of scheduled retries of partition ``p``, scored by
  due time (ms); a Lua script moves due members back into ``stream:{p}``
  atomically, so each retry runs exactly once whichever dispatcher gets there
  first, and a retry survives any dispatcher restart.
* ``dlq`` — the dead-letter stream (:mod:`notifactor.domain.dlq_entry`).
* ``presence:…``, ``gwalive:…``, ``gwusers:…`` — see
  :mod:`notifactor.adapters.redis_presence`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import coredis
import msgspec
from coredis.tokens import PureToken

from notifactor.adapters.redis_scripts import EvalShaScript
from notifactor.domain.routing import ROUTED_FIELD
from notifactor.ports.dispatch import ClaimBatch, Handoff, StreamEntry

DEFAULT_GROUP = "notifactor-dispatchers"
"""The consumer group every dispatcher process joins on every partition stream."""

ATTEMPTS_FIELD = "attempts"
FIRST_ATTEMPT_FIELD = "first_attempt_ms"
LAST_ERROR_FIELD = "last_error"
#: Times a full delivery stream deferred the entry without spending an attempt.
DEFERRALS_FIELD = "deferrals"
#: The sum of those deferrals' delays (what ``full_stream_patience_s`` bounds).
DEFERRED_MS_FIELD = "deferred_ms"
#: The gateways that already took the notification (JSON list): a retry or a
#: deferral routes only to the recipient's other gateways.
ROUTED_TO_FIELD = "routed_to"
#: Set on an entry whose dead letter could not be recorded (storage was down):
#: when it comes back it is dead-lettered with this reason, not tried again.
DEAD_REASON_FIELD = "dead_reason"


@attrs.frozen(kw_only=True)
class RedisKeys:
    """Every Redis key the dispatcher and the presence registry use."""

    prefix: str = "notifactor:"

    def stream(self, partition: int) -> str:
        return f"{self.prefix}stream:{partition}"

    def gateway_stream(self, gateway_id: str) -> str:
        return f"{self.prefix}gw:{gateway_id}"

    def retry(self, partition: int) -> str:
        return f"{self.prefix}retry:{partition}"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    def presence(self, tenant_id: str, user_id: str) -> str:
        return f"{self.prefix}presence:{tenant_id}/{user_id}"

    def gateway_alive(self, gateway_id: str) -> str:
        return f"{self.prefix}gwalive:{gateway_id}"

    def gateway_users(self, gateway_id: str) -> str:
        return f"{self.prefix}gwusers:{gateway_id}"

    def replayed(self, dlq_entry_id: str) -> str:
        return f"{self.prefix}dlq-replayed:{dlq_entry_id}"


# A delivery is appended (1) only while its gateway is alive (else 0) and its
# stream holds fewer than ARGV[1] entries (else 2). The gateway deletes what it has fanned out, so
# the length is its backlog; a full stream refuses (the dispatcher defers it and tries
# later) instead of trimming entries the gateway has not read yet.
ROUTE_LUA = """
local out = {}
local bound = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local j = (i + 1) / 2
  if redis.call('EXISTS', KEYS[i]) == 0 then
    out[j] = 0
  elseif redis.call('XLEN', KEYS[i + 1]) >= bound then
    out[j] = 2
  else
    redis.call('XADD', KEYS[i + 1], '*', ARGV[2], ARGV[2 + j])
    out[j] = 1
  end
end
return out
"""

PROMOTE_LUA = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local fields = cjson.decode(member)
  redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""

_HANDOFFS = {0: Handoff.GONE, 1: Handoff.TAKEN, 2: Handoff.FULL}

DELCONSUMER_IF_IDLE_LUA = """
local mine = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #mine > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _entry(raw: Any, deliveries: int = 1) -> StreamEntry:
    return StreamEntry(
        id=_text(raw.identifier),
        fields={_text(k): _raw(v) for k, v in raw.field_values.items()},
        deliveries=deliveries,
    )


def _after(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def retry_member(fields: Mapping[str, bytes]) -> bytes:
    """The sorted-set member of a scheduled retry: a JSON array of stream fields."""
    flat: list[str] = []
    for name, value in fields.items():
        flat += [name, value.decode()]
    return msgspec.json.encode(flat)


class RedisDispatchBus:
    """:class:`notifactor.ports.dispatch.DispatchBus` on Redis."""

    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        keys: RedisKeys | None = None,
        group: str = DEFAULT_GROUP,
        gateway_stream_maxlen: int = 100_000,
        dlq_maxlen: int = 1_000_000,
    ) -> None:
        self._client = client
        self.keys = keys or RedisKeys()
        self.group = group
        self._gateway_stream_maxlen = gateway_stream_maxlen
        self._dlq_maxlen = dlq_maxlen
        # EVALSHA with a load on NOSCRIPT, without coredis' per-call Script overhead.
        self._route = EvalShaScript(client, ROUTE_LUA, "route")
        self._promote = EvalShaScript(client, PROMOTE_LUA, "promote_retries")
        self._delconsumer = EvalShaScript(client, DELCONSUMER_IF_IDLE_LUA, "delete_idle_consumer")

    async def ensure_group(self, partition: int) -> None:
        with contextlib.suppress(coredis.exceptions.StreamDuplicateConsumerGroupError):
            await self._client.xgroup_create(
                self.keys.stream(partition), self.group, identifier="0", mkstream=True
            )

    async def read_new(
        self, partition: int, consumer: str, *, count: int, block_ms: int
    ) -> list[StreamEntry]:
        reply = await self._client.xreadgroup(
            self.group,
            consumer,
            streams={self.keys.stream(partition): ">"},
            count=count,
            block=block_ms,
        )
        if not reply:
            return []
        return [_entry(raw) for entries in reply.values() for raw in entries]

    async def read_own_pending(
        self, partition: int, consumer: str, *, count: int
    ) -> list[StreamEntry]:
        stream = self.keys.stream(partition)
        reply = await self._client.xreadgroup(
            self.group, consumer, streams={stream: "0"}, count=count
        )
        raws = [raw for entries in (reply or {}).values() for raw in entries]
        # Entries trimmed away come back without fields: acknowledge them.
        gone = [_text(raw.identifier) for raw in raws if not raw.field_values]
        if gone:
            await self.ack(partition, gone)
        present = [raw for raw in raws if raw.field_values]
        counts = await self._delivery_counts(partition, [_text(r.identifier) for r in present])
        return [_entry(raw, counts.get(_text(raw.identifier), 1)) for raw in present]

    async def claim_idle(
        self, partition: int, consumer: str, *, min_idle_ms: int, start: str, count: int
    ) -> ClaimBatch:
        reply: Any = await self._client.xautoclaim(
            self.keys.stream(partition),
            self.group,
            consumer,
            min_idle_time=min_idle_ms,
            start=start,
            count=count,
        )
        next_start = _text(reply[0])
        raws = [raw for raw in reply[1] if raw is not None]
        deleted = tuple(_text(i) for i in reply[2]) if len(reply) > 2 else ()
        counts = await self._delivery_counts(partition, [_text(r.identifier) for r in raws])
        entries = tuple(_entry(raw, counts.get(_text(raw.identifier), 1)) for raw in raws)
        return ClaimBatch(next_start=next_start, entries=entries, deleted_ids=deleted)

    async def _delivery_counts(self, partition: int, ids: Sequence[str]) -> dict[str, int]:
        if not ids:
            return {}
        ordered = sorted(ids, key=_id_key)
        reply: Any = await self._client.xpending(
            self.keys.stream(partition),
            self.group,
            start=ordered[0],
            end=ordered[-1],
            count=len(ordered) + 64,
        )
        wanted = set(ids)
        return {
            _text(p.identifier): int(p.delivered) for p in reply if _text(p.identifier) in wanted
        }

    async def ack(self, partition: int, ids: Sequence[str]) -> None:
        if ids:
            await self._client.xack(self.keys.stream(partition), self.group, list(ids))

    async def ack_and_retry_later(
        self, partition: int, entry_id: str, *, due_ms: int, fields: Mapping[str, bytes]
    ) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.retry(partition), {retry_member(fields): due_ms})
            pipe.xack(self.keys.stream(partition), self.group, [entry_id])

    async def ack_and_dead_letter(
        self, partition: int, entry_id: str, fields: Mapping[str, bytes]
    ) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.keys.dlq,
                dict(fields),
                trim_strategy=PureToken.MAXLEN,
                threshold=self._dlq_maxlen,
                trim_operator=PureToken.APPROXIMATELY,
            )
            pipe.xack(self.keys.stream(partition), self.group, [entry_id])

    async def route(self, deliveries: Sequence[tuple[str, bytes]]) -> list[Handoff]:
        if not deliveries:
            return []
        keys: list[str] = []
        args: list[str | int | bytes] = [self._gateway_stream_maxlen, ROUTED_FIELD]
        for gateway_id, message in deliveries:
            keys += [self.keys.gateway_alive(gateway_id), self.keys.gateway_stream(gateway_id)]
            args.append(message)
        reply: Any = await self._route(keys=keys, args=args)
        return [_HANDOFFS[int(code)] for code in reply]

    async def promote_due_retries(self, partition: int, *, now_ms: int, limit: int) -> int:
        """Move due retries back; ``now_ms < 0`` uses the Redis server's clock."""
        moved: Any = await self._promote(
            keys=[self.keys.retry(partition), self.keys.stream(partition)], args=[now_ms, limit]
        )
        return int(moved)

    async def dlq_fill(self) -> tuple[int, int]:
        return int(await self._client.xlen(self.keys.dlq)), self._dlq_maxlen

    async def trim_acknowledged(self, partition: int) -> int | None:
        stream = self.keys.stream(partition)
        groups: Any = await self._client.xinfo_groups(stream)
        if not groups:
            return None
        threshold: tuple[int, int] | None = None
        lag: int | None = None
        for group in groups:
            name = _text(group[b"name"])
            candidate = _after(_text(group[b"last-delivered-id"]))
            summary: Any = await self._client.xpending(stream, name)
            if summary.minimum_identifier is not None:
                candidate = min(candidate, _text(summary.minimum_identifier), key=_id_key)
            key = _id_key(candidate)
            threshold = key if threshold is None else min(threshold, key)
            if name == self.group:
                raw_lag = group.get(b"lag")
                lag = int(raw_lag) if isinstance(raw_lag, int) else None
        if threshold is not None and threshold > (0, 1):
            await self._client.xtrim(
                stream,
                PureToken.MINID,
                f"{threshold[0]}-{threshold[1]}",  # type: ignore[arg-type]
            )
        return lag

    async def leave(self, partition: int, consumer: str) -> bool:
        return await self._delete_consumer_if_idle(self.keys.stream(partition), consumer)

    async def _delete_consumer_if_idle(self, stream: str, consumer: str) -> bool:
        # Checked and deleted in one script: deleting a consumer drops its
        # pending entries, so one must never be deleted while it holds any.
        reply: Any = await self._delconsumer(keys=[stream], args=[self.group, consumer])
        return int(reply) >= 0

    async def reap_stale_consumers(self, partition: int, *, idle_ms: int, keep: str) -> list[str]:
        stream = self.keys.stream(partition)
        consumers: Any = await self._client.xinfo_consumers(stream, self.group)
        reaped: list[str] = []
        for info in consumers:
            name = _text(info[b"name"])
            if name == keep or int(info[b"pending"]) > 0 or int(info[b"idle"]) < idle_ms:
                continue
            if await self._delete_consumer_if_idle(stream, name):
                reaped.append(name)
        return reaped
