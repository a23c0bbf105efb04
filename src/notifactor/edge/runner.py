"""The WebSocket edge as one supervised subtree, for ``serve`` and ``gateway``.

::

    ws                  [supervision.gateway] settings, one_for_one
    ├── ws-clock        wakes idle session writers for their heartbeats
    ├── ws-admission    removes closed sessions from the cluster-wide tenant counts
    ├── ws-recorder     batches delivered/acked updates into the storage writer
    ├── sessions        DynamicSupervisor [supervision.sessions]: one SessionActor per socket
    ├── ws-delivery     reads notifactor:gw:{instance_id}, fans out, presence heartbeat
    └── ws-listener     trio-websocket on ws_host:ws_port, path /ws

Stop order is the reverse: the listener stops accepting and closes every
session with 1001, the consumer stops, the recorder hands what it holds
to the storage writer, and the admission removes the closed sessions from
the tenant connection counts in Redis; the clock stops last. Before the subtree starts, :func:`reset_gateway`
clears presence and the delivery stream left by an earlier run with the same
instance id.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import coredis
import trio

from notifactor.actors.stop import StopSignal, optional_stop_signal
from notifactor.actors.storage_writer import StorageWriterClient
from notifactor.adapters.redis_client import UNAVAILABLE
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_ws_admission import RedisWsAdmission
from notifactor.auth.verify import TokenVerifier
from notifactor.config import Config
from notifactor.edge.admission import ConnectionAdmission
from notifactor.edge.context import EdgeContext
from notifactor.edge.delivery_consumer import DeliveryConsumer, StreamPosition, reset_gateway
from notifactor.edge.delivery_recorder import DeliveryRecorder
from notifactor.edge.listener import WsListener
from notifactor.edge.registry import SessionRegistry
from notifactor.edge.settings import EdgeSettings, settings_from_config
from notifactor.ports.notification_store import NotificationStore
from notifactor.ports.presence import Presence
from notifactor.supervisors import (
    ChildSpec,
    NodeStatistics,
    Supervisor,
    dynamic_supervisor_from_config,
    supervisor_from_config,
)

log = logging.getLogger("notifactor.edge")


class WsEdge:
    """One gateway's WebSocket edge; :meth:`run` is its start function.

    Args:
        config: listener address, limits, tenant policies, ``[supervision]``.
        redis: an entered client (one pooled connection blocks in XREAD).
        store: storage, read for ``resume`` and ``ack`` checks.
        writer: the storage writer's client (delivered/acked updates).
        verifier: bearer-token verification of upgrade requests.
        presence: the presence registry the dispatcher routes by.
        settings: timings and sizes (default: from ``config``).
        keys: Redis key names (tests pass a prefix).
        on_listening: told the bound WebSocket port.
    """

    def __init__(
        self,
        config: Config,
        *,
        redis: coredis.Redis[bytes],
        store: NotificationStore,
        writer: StorageWriterClient,
        verifier: TokenVerifier,
        presence: Presence,
        settings: EdgeSettings | None = None,
        keys: RedisKeys | None = None,
        on_listening: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self.settings = settings or settings_from_config(config)
        self.keys = keys or RedisKeys()
        self.gateway_id = config.instance_id
        self._redis = redis
        self._presence = presence
        self._stop: StopSignal | None = None
        self.registry = SessionRegistry()
        self.admission = ConnectionAdmission(
            self.registry,
            RedisWsAdmission(redis, keys=self.keys, ttl_ms=self.settings.admission_ttl_ms),
            gateway_id=self.gateway_id,
            timeout_s=self.settings.admission_timeout_s,
            release_timeout_s=self.settings.close_timeout_s,
        )
        self.recorder = DeliveryRecorder(
            writer, queue_size=self.settings.recorder_queue, batch=self.settings.recorder_batch
        )
        self.context = EdgeContext(
            gateway_id=self.gateway_id,
            registry=self.registry,
            presence=presence,
            store=store,
            recorder=self.recorder,
            settings=self.settings,
            gateway_stopping=self._stopping,
        )
        self.pool = dynamic_supervisor_from_config("sessions", config.supervision.sessions)
        self.position = StreamPosition()
        self.listener = WsListener(
            config,
            verifier,
            self.context,
            self.pool,
            admission=self.admission,
            on_listening=on_listening,
        )
        self._tree: Supervisor | None = None

    def statistics(self) -> NodeStatistics:
        """The live ``ws`` subtree (for ``notifactor tree`` and ``/health``)."""
        if self._tree is None:
            return NodeStatistics(id="ws", kind="supervisor", state="starting")
        return self._tree.statistics()

    def child_spec(self) -> ChildSpec:
        """This edge as a child of the gateway subtree."""
        return ChildSpec(
            id="ws",
            start=self.run,
            kind="supervisor",
            introspect=self.statistics,
            shutdown=math.inf,
        )

    @property
    def port(self) -> int | None:
        """The bound WebSocket port, once listening."""
        return self.listener.port

    def consumer(self) -> DeliveryConsumer:
        return DeliveryConsumer(
            self._redis,
            keys=self.keys,
            presence=self._presence,
            registry=self.registry,
            gateway_id=self.gateway_id,
            settings=self.settings,
            position=self.position,
            admission=self.admission,
            store=self.context.store,
        )

    async def _run_consumer(self, *, task_status: trio.TaskStatus[None]) -> None:
        await self.consumer().run(task_status=task_status)

    def supervisor(self) -> Supervisor:
        """The ``ws`` subtree (see the module docstring)."""
        children = [
            ChildSpec(id="ws-clock", start=self.context.clock.run),
            ChildSpec(id="ws-admission", start=self.admission.run),
            ChildSpec(id="ws-recorder", start=self.recorder.run),
            self.pool.child_spec(),
            ChildSpec(id="ws-delivery", start=self._run_consumer),
            ChildSpec(id="ws-listener", start=self.listener.run, shutdown=_listener_budget(self)),
        ]
        return supervisor_from_config("ws", self.config.supervision.gateway, children)

    def _stopping(self) -> bool:
        """Whether this edge as a whole has been asked to stop (not just its session pool)."""
        return self._stop is not None and self._stop.requested

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reset this gateway's Redis state, then run the subtree until stopped."""
        self._stop = optional_stop_signal()
        await reset_gateway(self._redis, self.keys, self._presence, self.gateway_id)
        self._tree = self.supervisor()
        try:
            await self._tree.run(task_status=task_status)
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self.settings.close_timeout_s
                try:
                    await self._presence.drop_gateway(self.gateway_id)
                except UNAVAILABLE as error:  # the registrations expire with the heartbeat
                    log.warning("could not drop this gateway's presence: %s", error)


def _listener_budget(edge: WsEdge) -> float:
    """Time for the listener to close every session (1001) and return."""
    sessions = edge.config.supervision.sessions
    return sessions.shutdown_s + 2 * edge.settings.close_timeout_s
