"""The gateway's delivery stream: routed notifications in, fan-out to local sessions.

Each gateway process owns ``notifactor:gw:{instance_id}``; the dispatcher
appends a :class:`~notifactor.domain.routing.RoutedMessage` for every
notification whose recipient has a session here. The consumer reads it with
plain ``XREAD`` (one reader per stream, no group needed), encodes each
notification frame once, hands it to the recipient's local sessions, and
deletes the entries it processed, so the stream holds only what is in flight.

It also keeps this gateway alive in the presence registry (heartbeat every
``presence_heartbeat_s``; the same tick writes the exact count of users whose
session unregister failed or timed out, and refreshes this gateway's members
of the cluster-wide tenant connection counts) and, now and then, removes the delivery streams of
gateways that died (no ``gwalive`` key and nothing written for
``stale_stream_ms``). The presence check also runs at once when the stream
reader gets Redis back after an outage. When it finds registrations lost and
registers the users again, the users' open sessions are sent what was routed
to nobody meanwhile (:mod:`notifactor.edge.presence_catch_up`), read from
storage since the last check that found each of them registered.
:func:`reset_gateway` runs once when the edge starts: it forgets the
registrations and the stream of an earlier run with the same id.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection
from typing import Any

import attrs
import coredis
import msgspec
import trio

from notifactor.actors.outage import Outage
from notifactor.adapters.redis_client import UNAVAILABLE
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.domain.routing import ROUTED_FIELD, ROUTED_SCHEMA_VERSION, decode_routed
from notifactor.domain.timestamps import wall_clock_us
from notifactor.domain.ws_frames import routed_notification_frame
from notifactor.edge.admission import ConnectionAdmission
from notifactor.edge.presence_catch_up import PresenceCatchUp
from notifactor.edge.registry import Deliver, SessionHandle, SessionRegistry
from notifactor.edge.settings import EdgeSettings
from notifactor.edge.stopping import until_stop_requested
from notifactor.observability.tracing import consume_span, parent_context
from notifactor.ports.notification_store import NotificationStore
from notifactor.ports.presence import Presence

log = logging.getLogger("notifactor.edge.delivery")


@attrs.define
class StreamPosition:
    """The last processed entry id; outlives restarts of the consumer.

    ``undeleted``: processed entries whose ``XDEL`` has not succeeded yet
    (Redis unreachable); deleted with the next read's.
    """

    last_id: str = "0-0"
    undeleted: list[str] = attrs.Factory(list)


async def reset_gateway(
    redis: coredis.Redis[bytes], keys: RedisKeys, presence: Presence, gateway_id: str
) -> None:
    """Forget what an earlier run of ``gateway_id`` left behind, then mark it alive."""
    await presence.drop_gateway(gateway_id)
    await redis.delete([keys.gateway_stream(gateway_id)])
    await presence.heartbeat(gateway_id)


class DeliveryConsumer:
    """Reads this gateway's delivery stream and fans it out (see the module docstring).

    ``store``: where the catch-up after lost presence registrations reads the
    users' inboxes; None catches nobody up (tests of other parts).
    """

    def __init__(
        self,
        redis: coredis.Redis[bytes],
        *,
        keys: RedisKeys,
        presence: Presence,
        registry: SessionRegistry,
        gateway_id: str,
        settings: EdgeSettings,
        position: StreamPosition | None = None,
        admission: ConnectionAdmission | None = None,
        store: NotificationStore | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._presence = presence
        self._registry = registry
        self._gateway_id = gateway_id
        self._settings = settings
        self._position = position or StreamPosition()
        self._admission = admission
        self._stream = keys.gateway_stream(gateway_id)
        self._catch_up = (
            None if store is None else PresenceCatchUp(store, registry, page=settings.replay_page)
        )
        # Set to check presence before the next heartbeat tick is due.
        self._check_presence = trio.Event()
        # Per live user, the wall-clock time (µs) of the last presence check
        # that found the user registered: what was routed to the user after
        # it may have found the registration missing.
        self._confirmed_us: dict[tuple[str, str], int] = {}
        self._last_check_us = wall_clock_us()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume until cancelled; a start function for the edge supervisor.

        Redis being unreachable is waited out (with a growing pause, logged
        once per outage) instead of crashing: the sessions stay open, and
        live delivery resumes from where it stopped when Redis is back.
        Presence is checked as soon as it is back: the registrations may
        have expired meanwhile.
        """
        self._last_check_us = wall_clock_us()
        with contextlib.suppress(*UNAVAILABLE):  # the heartbeat loop retries
            await self._presence.heartbeat(self._gateway_id)
        with until_stop_requested():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat_loop)
                nursery.start_soon(self._janitor_loop)
                if self._catch_up is not None:
                    nursery.start_soon(self._catch_up.run)
                task_status.started()
                outage = Outage("delivery stream", log)
                while True:
                    try:
                        await self.consume_once()
                    except UNAVAILABLE as error:
                        await outage.failed(error)
                    else:
                        if outage.failures:  # Redis is back: check presence now
                            self._check_presence.set()
                        outage.succeeded()

    async def consume_once(self) -> int:
        """One ``XREAD`` (blocking up to ``consumer_block_ms``); returns entries processed."""
        reply: Any = await self._redis.xread(
            {self._stream: self._position.last_id},
            count=self._settings.consumer_count,
            block=self._settings.consumer_block_ms,
        )
        if not reply:
            return 0
        ids: list[str] = []
        for entries in reply.values():
            for entry in entries:
                ident = _text(entry.identifier)
                for handle in self._fan_out(ident, entry.field_values):
                    # Half full: pace the burst to this session's writer. A
                    # writer that stalls is not waited for (its client fills
                    # up and is closed with 1013).
                    await handle.make_room()
                ids.append(ident)
        if ids:
            self._position.last_id = ids[-1]
            self._position.undeleted.extend(ids)
        if self._position.undeleted:  # with any a failed delete left behind
            await self._redis.xdel(self._stream, self._position.undeleted)
            self._position.undeleted.clear()
        return len(ids)

    def _fan_out(self, ident: str, fields: Any) -> tuple[SessionHandle, ...]:
        """Fan one entry out; the sessions it left backlogged."""
        raw = fields.get(ROUTED_FIELD.encode()) or fields.get(ROUTED_FIELD)
        try:
            if raw is None:
                raise ValueError(f"no {ROUTED_FIELD!r} field")
            message = decode_routed(raw)
            if message.schema_version != ROUTED_SCHEMA_VERSION:
                raise ValueError(f"unknown schema_version {message.schema_version}")
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
            log.warning("skipping delivery-stream entry %s: %s", ident, error)
            return ()
        frame = routed_notification_frame(message)
        with consume_span(
            "edge.fan_out",
            message.traceparent,
            {
                "notifactor.tenant_id": message.tenant_id,
                "notifactor.notification_id": message.id,
                "notifactor.attempt": message.attempt,
            },
        ) as span:
            deliver = Deliver(message=message, frame=frame, trace=parent_context(span))
            result = self._registry.fan_out(deliver)
            span.set_attribute("notifactor.sessions", result.sessions)
        return result.backlogged

    async def _heartbeat_loop(self) -> None:
        """Every ``presence_heartbeat_s``, or at once when asked: the presence tick."""
        while True:
            with trio.move_on_after(self._settings.presence_heartbeat_s):
                await self._check_presence.wait()
            self._check_presence = trio.Event()
            # The check first: settling writes exact counts, which would make
            # a user whose registration was lost look registered.
            try:
                await self._heartbeat()
            except Exception as error:  # next tick retries; the TTL spans several ticks
                log.warning("presence heartbeat failed: %s", error)
            await self._settle_presence()
            if self._admission is not None:
                try:
                    await self._admission.refresh()
                except Exception as error:  # the TTL spans three ticks
                    log.warning("connection-count refresh failed: %s", error)

    async def _heartbeat(self) -> None:
        """Keep this gateway's registrations alive; register its users again if lost.

        Checked per user (a lost registration is found even when another
        user's count is too high). A user with a session registering, or
        whose sessions opened or closed, while the check was out is left to
        the next check: a registration on its way can hide a lost one. Users
        registered again get their live sessions caught up on what was
        routed since the last check that found them registered (at most
        ``resume_lookback_s`` back; a user no check has found registered yet,
        since the check before the first that saw it).
        """
        registry = self._registry
        checked_us = wall_clock_us()
        before = registry.user_counts()
        # A registration on its way, or a count an unregister may have left
        # too high, can hide a lost registration: those users are not judged.
        registering = registry.registering_users() | registry.unsettled_users()
        await self._presence.heartbeat(self._gateway_id)
        missing = await self._presence.missing(self._gateway_id, before) if before else set()
        after = registry.user_counts()
        registering |= registry.registering_users() | registry.unsettled_users()
        previous_us, self._last_check_us = self._last_check_us, checked_us
        confirmed = self._confirmed_us
        lost: list[tuple[str, str]] = []
        for user, count in before.items():
            certain = user not in registering and after.get(user) == count
            if certain and user not in missing:
                confirmed[user] = checked_us
                continue
            confirmed.setdefault(user, previous_us)
            if certain:
                lost.append(user)
        for user in [user for user in confirmed if user not in after]:
            del confirmed[user]
        if not lost:
            return
        log.warning(
            "presence lost %d of this gateway's %d users; registering them again",
            len(lost),
            len(after),
            extra={"event": "presence_reasserted"},
        )
        try:
            await self._presence.reassert(self._gateway_id, {user: after[user] for user in lost})
        finally:
            # Also when the reassert's reply was lost: it may have landed, and
            # the next check would then find these users registered.
            self._request_catch_up(lost)

    async def _settle_presence(self) -> None:
        """Write the exact counts of users whose unregister failed or timed out."""
        counts = self._registry.take_unsettled()
        if not counts:
            return
        try:
            await self._presence.settle(self._gateway_id, counts)
        except BaseException as error:
            for tenant_id, user_id in counts:
                self._registry.unregister_unsure(tenant_id, user_id)
            if not isinstance(error, Exception):
                raise
            log.warning("presence settlement failed: %s", error)
            return
        # A session of one of these users that ended meanwhile may have been
        # unregistered before the settlement landed: settle those again.
        for (tenant_id, user_id), count in counts.items():
            if len(self._registry.sessions_of(tenant_id, user_id)) != count:
                self._registry.unregister_unsure(tenant_id, user_id)
        # A user whose count was unsure was not judged by the checks, and
        # settling may have restored a lost registration (or a count one too
        # high hid it): catch up every user still online. A session is not
        # sent again what it remembers sending.
        self._request_catch_up([user for user, count in counts.items() if count > 0])

    def _request_catch_up(self, users: Collection[tuple[str, str]]) -> None:
        """Catch these users' live sessions up from the last check that found them registered."""
        if self._catch_up is None or not users:
            return
        oldest_us = wall_clock_us() - round(self._settings.resume_lookback_s * 1_000_000)
        confirmed, fallback = self._confirmed_us, self._last_check_us
        self._catch_up.request(
            {user: max(confirmed.get(user, fallback), oldest_us) for user in users}
        )

    async def _janitor_loop(self) -> None:
        while True:
            try:
                removed = await remove_dead_streams(
                    self._redis, self._keys, stale_ms=self._settings.stale_stream_ms
                )
                if removed:
                    log.info("removed %d delivery streams of dead gateways", removed)
            except Exception as error:  # housekeeping never stops delivery
                log.warning("delivery-stream cleanup failed: %s", error)
            await trio.sleep(self._settings.janitor_interval_s)


async def remove_dead_streams(
    redis: coredis.Redis[bytes], keys: RedisKeys, *, stale_ms: int
) -> int:
    """Delete delivery streams whose gateway is gone and that were idle ``stale_ms``."""
    pattern = keys.gateway_stream("*")
    prefix = keys.gateway_stream("")
    now_ms = int(time.time() * 1000)
    removed = 0
    async for key in redis.scan_iter(match=pattern, count=500):
        name = _text(key)
        gateway_id = name[len(prefix) :]
        if await redis.exists([keys.gateway_alive(gateway_id)]):
            continue
        last: Any = await redis.xrevrange(name, count=1)
        if last:
            last_ms = int(_text(last[0].identifier).partition("-")[0])
            if now_ms - last_ms < stale_ms:
                continue
        removed += int(await redis.delete([name]))
    return removed


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
