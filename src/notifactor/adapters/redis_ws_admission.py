"""Cluster-wide WebSocket connection counts per tenant, on Redis.

Key: ``{prefix}wsconn:{tenant}`` — a sorted set whose members are
``{gateway_id}/{session_id}``, each scored by the time (Redis clock, ms) at
which it expires unless refreshed.

* Admission is one script: drop expired members, refuse with the current
  count when the tenant is at its limit, else add the member with
  ``now + ttl``.
* Each gateway refreshes the expiry of its live members on its presence
  heartbeat (one script per heartbeat, whatever the number of sessions).
  A live member that is missing (Redis lost it: an outage longer than the
  TTL, a restart without persistence) is added back, so the count heals
  instead of staying low. The gateway passes only members it still holds;
  one released while a refresh was on its way may come back, and then
  expires within the TTL.
* A closed session removes its member; a crashed gateway's members expire
  ``ttl_ms`` after its last heartbeat (the key itself expires when idle).

Every script reads the time from Redis (``TIME``), so the gateways' clocks
never have to agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import coredis

from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_scripts import EvalShaScript

DEFAULT_TTL_MS = 30_000

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

ADMIT_LUA = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[1]) then
  return {0, count}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, count + 1}
"""
)

REFRESH_LUA = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
local i = 2
local refreshed = 0
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    refreshed = refreshed + redis.call('ZADD', KEYS[k], 'CH', now + ttl, ARGV[i])
    i = i + 1
  end
  if redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('PEXPIRE', KEYS[k], ttl)
  end
end
return refreshed
"""
)


@attrs.frozen
class AdmissionResult:
    """``admitted``: whether the member was added; ``count``: the tenant's sessions."""

    admitted: bool
    count: int


def ws_connections_key(keys: RedisKeys, tenant_id: str) -> str:
    return f"{keys.prefix}wsconn:{tenant_id}"


def member_of(gateway_id: str, session_id: str) -> str:
    return f"{gateway_id}/{session_id}"


class RedisWsAdmission:
    """Admits, refreshes and releases WebSocket sessions of tenants cluster-wide.

    Args:
        client: an entered coredis client.
        keys: key names (tests pass a prefix).
        ttl_ms: how long a member outlives its gateway's last refresh
            (at least three presence heartbeats).
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
        self._admit = EvalShaScript(client, ADMIT_LUA, "ws_admit")
        self._refresh = EvalShaScript(client, REFRESH_LUA, "ws_refresh")

    def key(self, tenant_id: str) -> str:
        return ws_connections_key(self._keys, tenant_id)

    async def admit(self, tenant_id: str, member: str, limit: int) -> AdmissionResult:
        """Add ``member`` unless ``tenant_id`` already holds ``limit`` live members."""
        reply: Any = await self._admit(
            keys=[self.key(tenant_id)], args=[limit, self.ttl_ms, member]
        )
        return AdmissionResult(admitted=int(reply[0]) == 1, count=int(reply[1]))

    async def refresh(self, members: Mapping[str, Iterable[str]]) -> int:
        """Push back the expiry of live ``members`` (by tenant), adding back any missing.

        Returns how many were refreshed or added.
        """
        keys: list[str] = []
        args: list[str | int] = [self.ttl_ms]
        for tenant_id, tenant_members in members.items():
            listed = list(tenant_members)
            if not listed:
                continue
            keys.append(self.key(tenant_id))
            args.append(len(listed))
            args.extend(listed)
        if not keys:
            return 0
        reply: Any = await self._refresh(keys=keys, args=args)
        return int(reply)

    async def release(self, members: Iterable[tuple[str, str]]) -> None:
        """Remove ``(tenant_id, member)`` pairs (one pipeline)."""
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, member in members:
            by_tenant.setdefault(tenant_id, []).append(member)
        if not by_tenant:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for tenant_id, tenant_members in by_tenant.items():
                pipe.zrem(self.key(tenant_id), tenant_members)

    async def count(self, tenant_id: str) -> int:
        """Members of ``tenant_id``, expired ones included (for tests and inspection)."""
        return int(await self._client.zcard(self.key(tenant_id)))
