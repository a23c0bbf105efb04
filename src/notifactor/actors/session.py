"""The session actor: one per WebSocket, bound to one (tenant, user).

Its mailbox receives routed notifications from the gateway's delivery
consumer (:class:`~notifactor.edge.registry.Deliver`, sent with
``tell_nowait``). Inside, three tasks share the actor's state:

* the **reader** parses client frames (SPEC §5) and answers them; a malformed
  frame gets an ``error`` frame and the session stays open;
* the **writer** drains a bounded outbox to the socket and records
  ``delivered`` (plus the latency histogram) once a frame is written;
* the **heartbeat** pings every ``heartbeat_s`` and closes a session that has
  been silent for two periods (1008).

A live frame that finds the outbox full closes the session with 1013 instead
of waiting: one client that stops reading never slows the fan-out to others.
A graceful stop (the pool is stopping) closes with 1001. ``resume`` replays
from storage while live frames are held back and de-duplicated
(:mod:`notifactor.domain.resume`).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import attrs
import trio

from notifactor.actors.actor import Actor
from notifactor.actors.mailbox import Inbox
from notifactor.actors.ref import ActorRef
from notifactor.domain.cursor import Position
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import DeliveryUpdate, InboxEntry
from notifactor.domain.resume import Keyed, ReplayMerge, ReplayOverflow, SentWindow
from notifactor.domain.timestamps import to_us
from notifactor.domain.ws_frames import (
    PONG_FRAME,
    Ack,
    FrameProblem,
    Ping,
    Resume,
    Subscribe,
    Unsubscribe,
    error_frame,
    notification_frame,
    parse_client_frame,
    resumed_frame,
    subscribed_frame,
    welcome_frame,
)
from notifactor.edge import metrics
from notifactor.edge.context import EdgeContext
from notifactor.edge.registry import Deliver, SessionHandle
from notifactor.edge.socket_port import SocketClosed, WebSocket
from notifactor.ports.notification_store import StoreError

log = logging.getLogger("notifactor.session")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013


@attrs.frozen(kw_only=True)
class _Outgoing:
    """A frame for the writer; ``id`` set for notification frames."""

    text: str
    id: str | None = None
    created_at: datetime | None = None
    live: bool = False
    record: bool = True


class SessionActor(Actor[Deliver]):
    """One WebSocket session (see the module docstring)."""

    def __init__(
        self,
        *,
        session_id: str,
        tenant_id: str,
        user_id: str,
        socket: WebSocket,
        ref: ActorRef[Deliver],
        context: EdgeContext,
    ) -> None:
        self.session_id = session_id
        self.tenant_id = tenant_id
        self.user_id = user_id
        self._socket = socket
        self._ctx = context
        settings = context.settings
        self._sent: SentWindow[datetime] = SentWindow(settings.sent_window)
        # Until the first client frame (or ``resume_grace_s``), live frames are
        # held: a client that resumes first gets them merged into its replay,
        # in order, instead of ahead of older replayed ones.
        self._opening = True
        self._merge: ReplayMerge[Deliver] | None = ReplayMerge(
            Position(time_us=-1, key=""), settings.replay_hold_limit
        )
        self._included: set[str] | None = None  # None: every channel
        self._outbox, self._outbox_out = trio.open_memory_channel[_Outgoing](settings.outbox_size)
        self._main = trio.CancelScope()
        self._closing: tuple[int, str] | None = None
        self._send_scope: trio.CancelScope | None = None
        self._last_heard = trio.current_time()
        self.session_handle = SessionHandle(
            session_id=session_id,
            tenant_id=tenant_id,
            user_id=user_id,
            ref=ref,
            overloaded=lambda: self.close(CLOSE_TRY_AGAIN, "client too slow"),
        )

    @property
    def close_code(self) -> int | None:
        """The code the server chose to close with, if it did."""
        return None if self._closing is None else self._closing[0]

    def close(self, code: int, reason: str) -> None:
        """Ask the session to close with ``code`` (the first request wins)."""
        if self._closing is None:
            self._closing = (code, reason)
        self._main.cancel()
        # A write in flight gets only the close budget from now on.
        if self._send_scope is not None:
            limit = trio.current_time() + self._ctx.settings.close_timeout_s
            self._send_scope.deadline = min(self._send_scope.deadline, limit)

    async def on_start(self) -> None:
        self._ctx.registry.add(self.session_handle)
        try:
            await self._ctx.presence.register(self.tenant_id, self.user_id, self._ctx.gateway_id)
        except BaseException:
            self._ctx.registry.remove(self.session_handle)
            raise
        metrics.WEBSOCKET_ACTIVE_SESSIONS.inc()

    async def handle(self, message: Deliver) -> None:
        self._on_live(message)

    async def run(self, inbox: Inbox[Deliver]) -> None:
        try:
            with self._main:
                await self._socket.send(
                    welcome_frame(
                        session_id=self.session_id,
                        tenant_id=self.tenant_id,
                        user_id=self.user_id,
                        heartbeat_s=self._ctx.settings.heartbeat_s,
                    )
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_loop)
                    nursery.start_soon(self._write_loop)
                    nursery.start_soon(self._heartbeat_loop, nursery)
                    nursery.start_soon(self._opening_timer)
                    async for message in inbox:
                        self._on_live(message)
                    self.close(CLOSE_GOING_AWAY, "server shutting down")
        except SocketClosed:
            self._main.cancel()
        finally:
            await self._finish()

    # --- live traffic ------------------------------------------------------

    def _wants(self, channel: str) -> bool:
        return self._included is None or channel in self._included

    def _on_live(self, deliver: Deliver) -> None:
        message = deliver.message
        if not self._wants(message.channel):
            return
        if self._merge is not None:
            position = Position(time_us=to_us(message.created_at), key=message.id)
            try:
                self._merge.hold(Keyed(id=message.id, position=position, item=deliver))
            except ReplayOverflow:
                self.close(CLOSE_TRY_AGAIN, "client too slow (resume)")
            return
        self._enqueue_live(deliver)

    def _enqueue_live(self, deliver: Deliver) -> None:
        message = deliver.message
        if message.id in self._sent:
            return
        outgoing = _Outgoing(
            text=deliver.frame, id=message.id, created_at=message.created_at, live=True
        )
        try:
            self._outbox.send_nowait(outgoing)
        except trio.WouldBlock:
            self.close(CLOSE_TRY_AGAIN, "client too slow")
            return
        self._sent.add(message.id, message.created_at)

    # --- tasks -------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                raw = await self._socket.receive()
                self._last_heard = trio.current_time()
                await self._on_frame(raw)
        except SocketClosed:
            self._main.cancel()

    async def _opening_timer(self) -> None:
        await trio.sleep(self._ctx.settings.resume_grace_s)
        self._release_opening()

    def _release_opening(self) -> None:
        if not self._opening:
            return
        self._opening = False
        merge, self._merge = self._merge, None
        if merge is not None:
            for keyed in merge.release():
                self._enqueue_live(keyed.item)

    async def _on_frame(self, raw: str | bytes) -> None:
        frame = parse_client_frame(raw)
        if self._opening:
            if isinstance(frame, Resume) and self._merge is not None:
                self._opening = False
                self._merge.since = frame.position
                await self._resume(frame, self._merge)
                return
            self._release_opening()
        match frame:
            case FrameProblem():
                await self._emit(error_frame(frame))
            case Subscribe(channels=channels):
                self._included = (self._included or set()) | set(channels)
                await self._emit(subscribed_frame(sorted(self._included)))
            case Unsubscribe(channels=channels):
                if self._included is None:
                    await self._emit(
                        error_frame(
                            FrameProblem(
                                code="not_subscribed",
                                message="this session receives every channel; subscribe first",
                            )
                        )
                    )
                    return
                self._included -= set(channels)
                await self._emit(subscribed_frame(sorted(self._included)))
            case Ack(id=ident):
                await self._ack(ident)
            case Resume():
                await self._resume(frame)
            case Ping():
                await self._emit(PONG_FRAME)

    async def _emit(self, text: str) -> None:
        await self._outbox.send(_Outgoing(text=text))

    async def _write_loop(self) -> None:
        try:
            async for outgoing in self._outbox_out:
                # Shielded: a write cancelled half-way would corrupt the stream
                # and lose the close frame; it is bounded by its own deadline.
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self._ctx.settings.send_timeout_s
                    self._send_scope = scope
                    await self._socket.send(outgoing.text)
                self._send_scope = None
                if scope.cancelled_caught:
                    self.close(CLOSE_TRY_AGAIN, "client too slow (write timed out)")
                    return
                if outgoing.id is not None and outgoing.created_at is not None:
                    await self._written(outgoing.id, outgoing.created_at, outgoing)
        except SocketClosed:
            self._main.cancel()

    async def _written(self, ident: str, created_at: datetime, outgoing: _Outgoing) -> None:
        metrics.NOTIFICATIONS_DELIVERED.inc()
        if outgoing.live:
            metrics.DELIVERY_LATENCY_MS.observe(
                max(0.0, time.time() - created_at.timestamp()) * 1000
            )
        if outgoing.record:
            await self._ctx.recorder.record(
                self._update(ident, created_at, DeliveryState.DELIVERED)
            )

    async def _heartbeat_loop(self, nursery: trio.Nursery) -> None:
        period = self._ctx.settings.heartbeat_s
        while True:
            await trio.sleep(period)
            if trio.current_time() - self._last_heard > 2 * period:
                self.close(CLOSE_POLICY, "heartbeat timeout")
                return
            nursery.start_soon(self._ping)

    async def _ping(self) -> None:
        try:
            await self._socket.ping()
        except SocketClosed:
            return
        self._last_heard = trio.current_time()

    # --- client requests -----------------------------------------------------

    def _update(self, ident: str, created_at: datetime, state: DeliveryState) -> DeliveryUpdate:
        return DeliveryUpdate(
            tenant_id=self.tenant_id,
            notification_id=ident,
            recipient_id=self.user_id,
            created_at=created_at,
            state=state,
            event_time=datetime.now(UTC),
        )

    async def _ack(self, ident: str) -> None:
        created_at = self._sent.get(ident)
        if created_at is None:
            try:
                view = await self._ctx.store.get_notification(self.tenant_id, ident)
            except StoreError:
                await self._problem("unavailable", "could not record the ack; retry later")
                return
            if view is None or view.notification.user_id != self.user_id:
                await self._problem("unknown_notification", f"no notification {ident[:128]!r}")
                return
            created_at = view.notification.created_at
        await self._ctx.recorder.record(self._update(ident, created_at, DeliveryState.ACKED))

    async def _problem(self, code: str, message: str) -> None:
        await self._emit(error_frame(FrameProblem(code=code, message=message)))

    async def _resume(self, frame: Resume, merge: ReplayMerge[Deliver] | None = None) -> None:
        if merge is None:
            if self._merge is not None:
                await self._problem("resume_in_progress", "a resume is already running")
                return
            merge = ReplayMerge(frame.position, self._ctx.settings.replay_hold_limit)
            self._merge = merge
        try:
            count = await self._replay(frame.since, merge)
        except StoreError as error:
            log.warning("resume of session %s failed: %s", self.session_id, error)
            await self._problem("resume_failed", "storage is unavailable; resume again later")
        else:
            await self._emit(resumed_frame(count))
        finally:
            # No checkpoint from here on: live frames go behind the released ones.
            self._merge = None
            for keyed in merge.release():
                self._enqueue_live(keyed.item)

    async def _replay(self, since: str, merge: ReplayMerge[Deliver]) -> int:
        page = self._ctx.settings.replay_page
        cursor = since
        count = 0
        while True:
            entries = await self._ctx.store.inbox_after(self.tenant_id, self.user_id, cursor, page)
            for entry in entries:
                if await self._replay_one(entry, merge):
                    count += 1
            if len(entries) < page:
                return count
            cursor = entries[-1].cursor

    async def _replay_one(self, entry: InboxEntry, merge: ReplayMerge[Deliver]) -> bool:
        notification = entry.notification
        merge.replayed(notification.id)
        if not self._wants(notification.channel):
            return False
        if not self._sent.add(notification.id, notification.created_at):
            return False
        text = notification_frame(
            id=notification.id,
            channel=notification.channel,
            content=notification.content,
            priority=notification.priority,
            metadata=notification.metadata,
            created_at=notification.created_at,
            cursor=entry.cursor,
        )
        record = entry.state not in (DeliveryState.DELIVERED, DeliveryState.ACKED)
        await self._outbox.send(
            _Outgoing(
                text=text, id=notification.id, created_at=notification.created_at, record=record
            )
        )
        return True

    # --- shutdown ------------------------------------------------------------

    async def _finish(self) -> None:
        self._ctx.registry.remove(self.session_handle)
        metrics.WEBSOCKET_ACTIVE_SESSIONS.dec()
        code, reason = self._closing or (1000, "")
        if self._closing is not None:
            metrics.WEBSOCKET_CLOSES.labels(code=str(code)).inc()
        settings = self._ctx.settings
        with trio.CancelScope(shield=True):
            with trio.move_on_after(settings.close_timeout_s):
                await self._socket.close(code, reason)
            with trio.move_on_after(settings.close_timeout_s):
                try:
                    await self._ctx.presence.unregister(
                        self.tenant_id, self.user_id, self._ctx.gateway_id
                    )
                except Exception as error:  # presence expires on its own with the gateway
                    log.warning("could not unregister session %s: %s", self.session_id, error)
