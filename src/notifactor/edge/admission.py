"""The tenant connection limit (``max_ws_connections``), held across the cluster.

The local count (:class:`~notifactor.edge.registry.SessionRegistry`) is a
cheap first check; the Redis sorted set of
:class:`~notifactor.adapters.redis_ws_admission.RedisWsAdmission` is the
authority. When Redis cannot answer an admission in time the session is
refused (503), never admitted blindly.

Releases come from :meth:`SessionSlot.release` (synchronous, exactly once per
admitted session): the local count drops at once and the member is queued
for removal; :meth:`ConnectionAdmission.run` removes queued members in
batches and, on a graceful stop, whatever is still queued. Live members are
refreshed on the gateway's presence heartbeat; a crashed gateway's members
expire after the TTL.
"""

from __future__ import annotations

import enum
import logging
import math

import attrs
import trio

from notifactor.adapters.redis_ws_admission import RedisWsAdmission, member_of
from notifactor.edge.registry import SessionRegistry
from notifactor.edge.stopping import until_stop_requested

log = logging.getLogger("notifactor.edge.admission")

RELEASE_BATCH = 512


class Verdict(enum.Enum):
    ADMITTED = "admitted"
    FULL = "full"  # the tenant is at its limit → 429
    UNAVAILABLE = "unavailable"  # Redis could not answer → 503


@attrs.frozen
class Admission:
    verdict: Verdict
    count: int = 0


class ConnectionAdmission:
    """Admits sessions against the tenant limit; one per gateway process.

    Args:
        registry: the local per-tenant count (first check).
        store: the cluster-wide count on Redis (authority).
        gateway_id: this process's instance id (prefix of its members).
        timeout_s: longest an admission may wait for Redis before refusing (503).
        release_timeout_s: bound on the final removal of queued members at stop.
    """

    def __init__(
        self,
        registry: SessionRegistry,
        store: RedisWsAdmission,
        *,
        gateway_id: str,
        timeout_s: float = 2.0,
        release_timeout_s: float = 2.0,
    ) -> None:
        self._registry = registry
        self._store = store
        self._gateway_id = gateway_id
        self._timeout_s = timeout_s
        self._release_timeout_s = release_timeout_s
        self._live: dict[str, set[str]] = {}
        self._released_in, self._released_out = trio.open_memory_channel[tuple[str, str]](math.inf)

    async def admit(self, tenant_id: str, session_id: str, limit: int) -> Admission:
        """Count the session in, locally and cluster-wide, unless the tenant is full."""
        if not self._registry.reserve(tenant_id, limit):
            return Admission(Verdict.FULL, self._registry.connections(tenant_id))
        member = member_of(self._gateway_id, session_id)
        try:
            with trio.fail_after(self._timeout_s):
                result = await self._store.admit(tenant_id, member, limit)
        except BaseException as error:
            # Unreachable, slow or failing Redis, or the upgrade was cancelled.
            # The script may have run all the same (a late reply): have the
            # member removed, so it does not hold a slot of the tenant until
            # it expires.
            self._registry.release(tenant_id)
            self._released_in.send_nowait((tenant_id, member))
            if not isinstance(error, Exception):
                raise
            log.warning("connection admission for tenant %s failed: %s", tenant_id, error)
            return Admission(Verdict.UNAVAILABLE)
        if not result.admitted:
            self._registry.release(tenant_id)
            return Admission(Verdict.FULL, result.count)
        self._live.setdefault(tenant_id, set()).add(member)
        return Admission(Verdict.ADMITTED, result.count)

    def release(self, tenant_id: str, session_id: str) -> None:
        """Give an admitted session back (call exactly once; never blocks)."""
        self._registry.release(tenant_id)
        member = member_of(self._gateway_id, session_id)
        members = self._live.get(tenant_id)
        if members is not None:
            members.discard(member)
            if not members:
                del self._live[tenant_id]
        self._released_in.send_nowait((tenant_id, member))

    def live_members(self) -> dict[str, list[str]]:
        return {tenant: sorted(members) for tenant, members in self._live.items()}

    async def refresh(self) -> None:
        """Push back the expiry of every live member (one script; on the heartbeat)."""
        if self._live:
            await self._store.refresh(self.live_members())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Remove released members until stopped, then those still queued."""
        task_status.started()
        with until_stop_requested():
            while True:
                first = await self._released_out.receive()
                await self._remove([first, *self._queued()])
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self._release_timeout_s
            await self._remove(self._queued(limit=None))

    def _queued(self, limit: int | None = RELEASE_BATCH) -> list[tuple[str, str]]:
        batch: list[tuple[str, str]] = []
        while limit is None or len(batch) < limit:
            try:
                batch.append(self._released_out.receive_nowait())
            except trio.WouldBlock:
                break
        return batch

    async def _remove(self, batch: list[tuple[str, str]]) -> None:
        if not batch:
            return
        try:
            await self._store.release(batch)
        except Exception as error:  # the members expire after the TTL anyway
            log.warning("removing %d released connections failed: %s", len(batch), error)
