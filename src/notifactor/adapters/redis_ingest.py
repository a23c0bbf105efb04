"""Ingestion on Redis: rate limit, quota, idempotency, XADD and read-your-write in one script.

One ``EVALSHA`` per request (or per batch) does everything atomically, so
several gateway processes share each tenant's limits exactly, and two
concurrent requests with the same ``Idempotency-Key`` cannot both enqueue.

Keys (``/`` cannot occur in a tenant id, so every key splits unambiguously):

* ``notifactor:rl:{tenant}`` — GCRA theoretical arrival time (µs), with a TTL.
* ``notifactor:quota:{tenant}/{utc day}`` — units admitted that day.
* ``notifactor:idem:{tenant}/{key}`` — the id accepted under an idempotency key.
* ``notifactor:accepted:{tenant}/{id}`` — the envelope, for ``GET`` right after
  the 202, until storage has it.
* ``notifactor:stream:{p}`` — partition streams; one field, ``envelope``.

The streams are never trimmed here: when a partition's consumer lag is over
the bound, items bound for it are shed (503) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import coredis
import trio

from notifactor.adapters.redis_client import UNAVAILABLE
from notifactor.adapters.redis_scripts import EvalShaScript
from notifactor.domain.envelope import ENVELOPE_FIELD, Envelope, decode_envelope, encode_envelope
from notifactor.domain.partitioning import STREAM_PREFIX
from notifactor.domain.rate_limit import RateRule
from notifactor.ports.ingest import (
    Accepted,
    IngestItem,
    IngestResult,
    IngestTimedOut,
    IngestUnavailable,
    Limited,
    Outcome,
    Shed,
)

RATE_KEY = "notifactor:rl:{tenant}"
QUOTA_PREFIX = "notifactor:quota:{tenant}"
IDEMPOTENCY_KEY = "notifactor:idem:{tenant}/{key}"
ACCEPTED_KEY = "notifactor:accepted:{tenant}/{id}"

_FIXED_ARGS = 9

INGEST_LUA = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local emission = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local idem_ttl = tonumber(ARGV[5])
local record_ttl = tonumber(ARGV[6])
local lag_bound = tonumber(ARGV[7])
local field = ARGV[8]
local n = tonumber(ARGV[9])
local tolerance = burst * emission
local DAY = 86400000000
local day = math.floor(now / DAY)
local quota_key = KEYS[2] .. '/' .. string.format('%d', day)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local used = tonumber(redis.call('GET', quota_key) or '0')
local admitted = 0
local lag_ok = {}

local function within_lag(stream)
  if lag_bound <= 0 then return true end
  local len = redis.call('XLEN', stream)
  if len <= lag_bound then return true end
  local groups = redis.call('XINFO', 'GROUPS', stream)
  if #groups == 0 then return false end
  for _, g in ipairs(groups) do
    local lag = len
    for j = 1, #g, 2 do
      if g[j] == 'lag' and type(g[j + 1]) == 'number' then lag = g[j + 1] end
    end
    if lag > lag_bound then return false end
  end
  return true
end

local out = {string.format('%d', now), '', '', ''}
for i = 1, n do
  local idem_key = KEYS[3 * i]
  local stream = KEYS[3 * i + 1]
  local record = KEYS[3 * i + 2]
  local id = ARGV[_FIXED_ARGS + 2 * i - 1]
  local envelope = ARGV[_FIXED_ARGS + 2 * i]
  local existing = false
  if idem_key ~= '' then existing = redis.call('GET', idem_key) end
  if existing then
    table.insert(out, 'dup'); table.insert(out, existing)
  else
    if lag_ok[stream] == nil then lag_ok[stream] = within_lag(stream) end
    if not lag_ok[stream] then
      table.insert(out, 'shed'); table.insert(out, '0')
    elseif quota > 0 and used + 1 > quota then
      table.insert(out, 'quota')
      table.insert(out, string.format('%d', (day + 1) * DAY - now))
    else
      local next_tat = math.max(tat, now) + emission
      if next_tat - now > tolerance then
        table.insert(out, 'rate')
        table.insert(out, string.format('%d', next_tat - tolerance - now))
      else
        tat = next_tat
        used = used + 1
        admitted = admitted + 1
        redis.call('XADD', stream, '*', field, envelope)
        redis.call('SET', record, envelope, 'EX', record_ttl)
        if idem_key ~= '' then redis.call('SET', idem_key, id, 'EX', idem_ttl) end
        table.insert(out, 'ok'); table.insert(out, id)
      end
    end
  end
end
if admitted > 0 then
  local ttl_ms = math.floor((tat - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', ttl_ms)
  redis.call('SET', quota_key, used, 'EX', 172800)
end
out[2] = string.format('%d', tat)
out[3] = tostring(used)
return out
""".replace("_FIXED_ARGS", str(_FIXED_ARGS))


@attrs.frozen(kw_only=True)
class IngestSettings:
    """Knobs of the Redis ingestion path.

    Attributes:
        idempotency_ttl_s: how long an ``Idempotency-Key`` is remembered.
        record_ttl_s: how long the read-your-write record lives (storage
            takes over well before).
        max_stream_lag: entries a partition may hold unconsumed before new
            items for it are shed; 0 disables the check.
        stream_prefix: partition streams are ``{stream_prefix}{p}``.
        call_timeout_s: longest an ingest call waits for Redis before it
            raises :class:`~notifactor.ports.ingest.IngestTimedOut` (the
            gateway then answers 503 with ``Retry-After``).
    """

    idempotency_ttl_s: int = 86_400
    record_ttl_s: int = 3_600
    max_stream_lag: int = 100_000
    stream_prefix: str = STREAM_PREFIX
    call_timeout_s: float = 2.0

    def stream(self, partition: int) -> str:
        """The stream of ``partition`` (``notifactor:stream:{p}`` unless overridden in tests)."""
        return f"{self.stream_prefix}{partition}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_ingest_reply(reply: Any) -> IngestResult:
    """The script's reply as an :class:`IngestResult`."""
    values = [_text(v) for v in reply]
    outcomes: list[Outcome] = []
    for status, value in zip(values[4::2], values[5::2], strict=True):
        match status:
            case "ok":
                outcomes.append(Accepted(id=value))
            case "dup":
                outcomes.append(Accepted(id=value, duplicate=True))
            case "rate" | "quota":
                outcomes.append(Limited(reason=status, retry_after_us=int(value)))
            case "shed":
                outcomes.append(Shed())
            case _:
                raise RuntimeError(f"unexpected ingest script status {status!r}")
    return IngestResult(
        outcomes=tuple(outcomes),
        now_us=int(values[0]),
        tat_us=int(values[1]),
        used_today=int(values[2]),
    )


def unavailable(error: BaseException) -> IngestUnavailable:
    """The :class:`IngestUnavailable` for one of the :data:`UNAVAILABLE` errors."""
    return IngestUnavailable(f"Redis: {type(error).__name__}: {error}")


def timed_out(timeout_s: float) -> IngestTimedOut:
    """The error of a call Redis did not answer within ``timeout_s``."""
    return IngestTimedOut(f"Redis did not answer within {timeout_s:g} s")


class RedisIngest:
    """:class:`notifactor.ports.ingest.IngestBus` on one coredis client."""

    def __init__(self, client: coredis.Redis[Any], settings: IngestSettings) -> None:
        self._client = client
        self._settings = settings
        self._script = EvalShaScript(client, INGEST_LUA, "ingest")

    @property
    def settings(self) -> IngestSettings:
        return self._settings

    @property
    def script_sha(self) -> str:
        """SHA1 of the ingest script (for callers that pipeline ``EVALSHA``)."""
        return self._script.sha

    async def load_script(self) -> None:
        """Load the ingest script (after a ``NOSCRIPT``)."""
        await self._client.script_load(INGEST_LUA)

    async def ingest(
        self,
        tenant_id: str,
        rule: RateRule,
        items: Sequence[IngestItem],
        *,
        now_us: int | None = None,
    ) -> IngestResult:
        keys, args = self.script_call(tenant_id, rule, items, now_us=now_us)
        with trio.move_on_after(self._settings.call_timeout_s):
            try:
                reply = await self._script(keys=keys, args=args)
            except UNAVAILABLE as error:
                raise unavailable(error) from error
            return parse_ingest_reply(reply)
        raise timed_out(self._settings.call_timeout_s)

    def script_call(
        self,
        tenant_id: str,
        rule: RateRule,
        items: Sequence[IngestItem],
        *,
        now_us: int | None = None,
    ) -> tuple[list[str], list[str | int | bytes]]:
        """The keys and arguments of the ingest script for one call."""
        keys: list[str] = [RATE_KEY.format(tenant=tenant_id), QUOTA_PREFIX.format(tenant=tenant_id)]
        args: list[str | int | bytes] = [
            "" if now_us is None else str(now_us),
            rule.emission_us,
            rule.burst,
            rule.daily_quota,
            self._settings.idempotency_ttl_s,
            self._settings.record_ttl_s,
            self._settings.max_stream_lag,
            ENVELOPE_FIELD,
            len(items),
        ]
        for item in items:
            envelope = item.envelope
            if envelope.tenant_id != tenant_id:
                raise ValueError("every item must belong to the calling tenant")
            idem = (
                ""
                if item.idempotency_key is None
                else IDEMPOTENCY_KEY.format(tenant=tenant_id, key=item.idempotency_key)
            )
            keys += [
                idem,
                self._settings.stream(item.partition),
                ACCEPTED_KEY.format(tenant=tenant_id, id=envelope.id),
            ]
            args += [envelope.id, encode_envelope(envelope)]
        return keys, args

    async def get_accepted(self, tenant_id: str, notification_id: str) -> Envelope | None:
        try:
            raw = await self._client.get(ACCEPTED_KEY.format(tenant=tenant_id, id=notification_id))
        except UNAVAILABLE as error:
            raise unavailable(error) from error
        if raw is None:
            return None
        envelope = decode_envelope(raw)
        return envelope if envelope.tenant_id == tenant_id else None

    async def ping(self) -> None:
        await self._client.ping()
