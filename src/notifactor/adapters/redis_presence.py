"""Presence on Redis: which gateway instances hold sessions of which users.

Keys (see :class:`notifactor.adapters.redis_dispatch.RedisKeys`):

* ``presence:{tenant}/{user}`` — hash ``gateway_id → live session count``.
* ``gwalive:{gateway_id}`` — exists while the gateway heartbeats (TTL ``ttl_ms``).
* ``gwusers:{gateway_id}`` — set of the presence keys the gateway registered,
  so a heartbeat can keep them alive and a clean shutdown can remove them.

A gateway that crashes stops heartbeating: within ``ttl_ms`` its ``gwalive``
key expires and routing ignores its registrations at once (the dispatcher's
route script checks ``gwalive`` atomically with the XADD). Its leftover hash
fields are removed the next time someone looks the user up, and the keys
themselves expire after ``ttl_ms`` without heartbeats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import coredis

from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_scripts import EvalShaScript

DEFAULT_TTL_MS = 30_000

REGISTER_LUA = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], KEYS[1])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
"""

UNREGISTER_LUA = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], KEYS[1])
end
return left
"""

# Refreshes the gateway's alive key and the TTL of every presence hash it
# registered (whether each still holds the gateway's count is the per-user
# MISSING_LUA's question).
HEARTBEAT_LUA = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('PEXPIRE', key, ARGV[1])
end
return 1
"""

# KEYS: gwalive, gwusers, then presence hashes; ARGV: gateway id, ttl, then
# the session count of each hash. A count is only ever raised: a session that
# registered meanwhile is never undercounted.
REASSERT_LUA = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
for i = 3, #KEYS do
  local count = tonumber(ARGV[i])
  local current = tonumber(redis.call('HGET', KEYS[i], ARGV[1]) or '0')
  if current < count then redis.call('HSET', KEYS[i], ARGV[1], count) end
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  redis.call('SADD', KEYS[2], KEYS[i])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return #KEYS - 2
"""

# KEYS: presence hashes; ARGV: gateway id, then the session count the gateway
# holds for each. Returns the (1-based) positions of those registered with fewer.
MISSING_LUA = """
local short = {}
for i = 1, #KEYS do
  if tonumber(redis.call('HGET', KEYS[i], ARGV[1]) or '0') < tonumber(ARGV[i + 1]) then
    short[#short + 1] = i
  end
end
return short
"""

# KEYS: gwusers, then presence hashes; ARGV: gateway id, ttl, then the exact
# session count of each hash (0 removes the gateway's field).
SETTLE_LUA = """
for i = 2, #KEYS do
  local count = tonumber(ARGV[i + 1])
  if count > 0 then
    redis.call('HSET', KEYS[i], ARGV[1], count)
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    redis.call('SADD', KEYS[1], KEYS[i])
  else
    redis.call('HDEL', KEYS[i], ARGV[1])
    redis.call('SREM', KEYS[1], KEYS[i])
  end
end
return #KEYS - 1
"""

#: Most users one reassert or settle script call carries.
REASSERT_BATCH = 500

# KEYS: presence hashes; ARGV[1]: the prefix of the ``gwalive`` keys. For each
# recipient, the gateways that registered it and are still alive; each
# gateway's liveness is read once per call, and a dead gateway's field is
# removed from the hash.
LOOKUP_LUA = """
local alive = {}
local out = {}
for i, key in ipairs(KEYS) do
  local live = {}
  for _, gateway in ipairs(redis.call('HKEYS', key)) do
    local ok = alive[gateway]
    if ok == nil then
      ok = redis.call('EXISTS', ARGV[1] .. gateway) == 1
      alive[gateway] = ok
    end
    if ok then
      live[#live + 1] = gateway
    else
      redis.call('HDEL', key, gateway)
    end
  end
  out[i] = live
end
return out
"""

DROP_LUA = """
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('HDEL', key, ARGV[1])
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisPresence:
    """:class:`notifactor.ports.presence.Presence` on Redis.

    Args:
        client: an entered coredis client.
        keys: key names (tests pass a prefix).
        ttl_ms: how long a registration outlives its gateway's last heartbeat.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        keys: RedisKeys | None = None,
        ttl_ms: int = DEFAULT_TTL_MS,
    ) -> None:
        if ttl_ms < 1:
            raise ValueError("ttl_ms must be >= 1")
        self._client = client
        self._keys = keys or RedisKeys()
        self.ttl_ms = ttl_ms
        self._register = EvalShaScript(client, REGISTER_LUA, "presence_register")
        self._unregister = EvalShaScript(client, UNREGISTER_LUA, "presence_unregister")
        self._heartbeat = EvalShaScript(client, HEARTBEAT_LUA, "presence_heartbeat")
        self._reassert = EvalShaScript(client, REASSERT_LUA, "presence_reassert")
        self._settle = EvalShaScript(client, SETTLE_LUA, "presence_settle")
        self._missing = EvalShaScript(client, MISSING_LUA, "presence_missing")
        self._drop = EvalShaScript(client, DROP_LUA, "presence_drop")
        self._lookup = EvalShaScript(client, LOOKUP_LUA, "presence_lookup")
        self._alive_prefix = self._keys.gateway_alive("")

    async def register(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        await self._register(
            keys=[
                self._keys.presence(tenant_id, user_id),
                self._keys.gateway_alive(gateway_id),
                self._keys.gateway_users(gateway_id),
            ],
            args=[gateway_id, self.ttl_ms],
        )

    async def unregister(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        await self._unregister(
            keys=[self._keys.presence(tenant_id, user_id), self._keys.gateway_users(gateway_id)],
            args=[gateway_id],
        )

    async def heartbeat(self, gateway_id: str) -> None:
        await self._heartbeat(
            keys=[self._keys.gateway_alive(gateway_id), self._keys.gateway_users(gateway_id)],
            args=[self.ttl_ms],
        )

    async def reassert(self, gateway_id: str, counts: Mapping[tuple[str, str], int]) -> None:
        leading = [self._keys.gateway_alive(gateway_id), self._keys.gateway_users(gateway_id)]
        await self._with_counts(self._reassert, leading, gateway_id, counts)

    async def missing(
        self, gateway_id: str, counts: Mapping[tuple[str, str], int]
    ) -> set[tuple[str, str]]:
        items = list(counts.items())
        short: set[tuple[str, str]] = set()
        for start in range(0, len(items), REASSERT_BATCH):
            chunk = items[start : start + REASSERT_BATCH]
            positions: Any = await self._missing(
                keys=[self._keys.presence(tenant, user) for (tenant, user), _ in chunk],
                args=[gateway_id, *(count for _, count in chunk)],
            )
            short.update(chunk[int(position) - 1][0] for position in positions)
        return short

    async def settle(self, gateway_id: str, counts: Mapping[tuple[str, str], int]) -> None:
        leading = [self._keys.gateway_users(gateway_id)]
        await self._with_counts(self._settle, leading, gateway_id, counts)

    async def _with_counts(
        self,
        script: EvalShaScript,
        leading: list[str],
        gateway_id: str,
        counts: Mapping[tuple[str, str], int],
    ) -> None:
        """``script`` over ``counts`` in batches: KEYS ``leading`` then the users'
        presence hashes, ARGV the gateway id, the TTL, then each user's count."""
        items = list(counts.items())
        for start in range(0, len(items), REASSERT_BATCH):
            chunk = items[start : start + REASSERT_BATCH]
            await script(
                keys=[
                    *leading,
                    *(self._keys.presence(tenant, user) for (tenant, user), _ in chunk),
                ],
                args=[gateway_id, self.ttl_ms, *(count for _, count in chunk)],
            )

    async def gateways_for(self, tenant_id: str, user_id: str) -> frozenset[str]:
        found = await self.gateways_for_many([(tenant_id, user_id)])
        return found.get((tenant_id, user_id), frozenset())

    async def gateways_for_many(
        self, recipients: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], frozenset[str]]:
        if not recipients:
            return {}
        keys = [self._keys.presence(tenant_id, user_id) for tenant_id, user_id in recipients]
        reply: Any = await self._lookup(keys=keys, args=[self._alive_prefix])
        return {
            recipient: frozenset(_text(g) for g in gateways)
            for recipient, gateways in zip(recipients, reply, strict=True)
            if gateways
        }

    async def drop_gateway(self, gateway_id: str) -> None:
        await self._drop(
            keys=[self._keys.gateway_alive(gateway_id), self._keys.gateway_users(gateway_id)],
            args=[gateway_id],
        )
