"""The session actor: one per WebSocket, bound to one (tenant, user).

Routed notifications arrive through the registry
(:class:`~notifactor.edge.registry.SessionHandle.deliver`), which queues them
synchronously in the session's bounded :class:`~notifactor.actors.session_outbox.Outbox`:
no mailbox hop and no task switch per session on the fan-out path. An idle
session keeps one task, because an idle session is mostly the tasks it keeps
(tens of thousands of them per gateway):

* the **writer** (the actor's own task) drains the outbox to the socket,
  records ``delivered`` once a frame is written, and between frames keeps the
  time: the heartbeat (a ping every ``heartbeat_s``; a session silent for two
  periods is closed, 1008) and the end of the opening hold;
* the **reader** (:mod:`notifactor.actors.session_requests`), a task started
  only while client frames are waiting, parses them (SPEC §5) and answers
  them; a malformed frame gets an ``error`` frame and the session stays open.

A live frame that finds the outbox full closes the session with 1013 instead
of waiting: one client that stops reading never slows the fan-out to others.
Frames released from a hold (the opening hold, a resume's) are exempt: they
are bounded by ``replay_hold_limit`` already. A graceful stop (the pool is
stopping) closes with 1001; a session that crashes closes with 1011, never
1000. ``resume`` is in :mod:`notifactor.actors.session_resume`.

The session starts once its presence registration (Redis) is done, after
the ``101``. It waits for it at most ``admission_timeout_s``, the bound of
the upgrade's other Redis call: past it, or when Redis cannot be reached,
the session does not start (:class:`PresenceUnavailable`) and the listener
closes the socket with 1013, instead of leaving a client with a ``101`` and
no ``welcome`` for as long as Redis stalls.
"""

from __future__ import annotations

import contextvars
import logging
import math
import time
from datetime import UTC, datetime

import trio

from notifactor.actors.actor import Actor
from notifactor.actors.mailbox import Inbox
from notifactor.actors.ref import ActorRef
from notifactor.actors.session_outbox import Outbox, Outgoing
from notifactor.actors.session_requests import ClientRequests
from notifactor.actors.session_resume import Resumption
from notifactor.actors.stop import optional_stop_signal
from notifactor.adapters.redis_client import bounded_call
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import DeliveryUpdate
from notifactor.domain.resume import ReplayOverflow, SentWindow
from notifactor.domain.ws_frames import welcome_frame
from notifactor.edge import metrics
from notifactor.edge.context import EdgeContext
from notifactor.edge.registry import Deliver, SessionHandle
from notifactor.edge.socket_port import SocketClosed, WebSocket
from notifactor.observability.tracing import end_item_span, start_child_span

log = logging.getLogger("notifactor.session")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013


class PresenceUnavailable(Exception):
    """The presence registry did not take a starting session in time, or could not be reached.

    Transient (Redis stalled, down or failing over): the listener closes the
    socket with 1013 (try again later), not 1011.
    """


class SessionActor(Actor[Deliver]):
    """One WebSocket session (see the module docstring).

    Live traffic reaches the session through :attr:`session_handle`, and a
    graceful stop through the supervisor's stop signal, so the session needs
    no address: the edge runs it with :meth:`serve`. ``ref`` is still accepted
    (and ignored), so it also runs like any actor (``run_actor``, ``actor_spec``).
    """

    __slots__ = (
        "_answering",
        "_closing",
        "_context",
        "_ctx",
        "_frames_written",
        "_last_heard",
        "_main",
        "_pacing",
        "_pinging",
        "_send_scope",
        "_sending_since",
        "_socket",
        "_stalled_at",
        "_tasks",
        "included",
        "outbox",
        "resumption",
        "sent",
        "session_handle",
        "session_id",
        "tenant_id",
        "user_id",
    )

    def __init__(
        self,
        *,
        session_id: str,
        tenant_id: str,
        user_id: str,
        socket: WebSocket,
        context: EdgeContext,
        ref: ActorRef[Deliver] | None = None,
    ) -> None:
        del ref  # the pool addresses the child by name; traffic uses session_handle
        self.session_id = session_id
        self.tenant_id = tenant_id
        self.user_id = user_id
        self._socket = socket
        self._ctx = context
        settings = context.settings
        self.sent: SentWindow[datetime] = SentWindow(settings.sent_window)
        self.resumption = Resumption(settings.replay_hold_limit)
        self.included: set[str] | None = None  # None: every channel
        self.outbox = Outbox(settings.outbox_size)
        self._main: trio.CancelScope | None = None  # the nursery's, once running
        self._tasks: trio.Nursery | None = None  # the same nursery, while it takes tasks
        self._context: contextvars.Context | None = None  # the session task's, for its tasks
        self._answering = False  # a task answers the client's frames
        self._closing: tuple[int, str] | None = None
        self._send_scope: trio.CancelScope | None = None
        self._last_heard = trio.current_time()
        self._pinging = False  # a ping waits for its pong
        self._frames_written = 0
        self._stalled_at: int | None = None  # frames written when the writer last stalled
        self._sending_since: float | None = None  # a socket write in progress since
        # (outbox.drained, seconds make_room waited since): its burst's pacing so far
        self._pacing: tuple[int, float] | None = None
        self.session_handle = SessionHandle(
            session_id=session_id,
            tenant_id=tenant_id,
            user_id=user_id,
            deliver=self._on_live,
            make_room=self.make_room,
            sent_ids=self.sent.ids,
        )

    @property
    def context(self) -> EdgeContext:
        """What the sessions of this edge share."""
        return self._ctx

    @property
    def socket(self) -> WebSocket:
        return self._socket

    def close_quietly(self) -> None:
        """The socket is gone: end the session without choosing a close code."""
        if self._main is not None:
            self._main.cancel()

    @property
    def close_code(self) -> int | None:
        """The code the server chose to close with, if it did."""
        return None if self._closing is None else self._closing[0]

    def close(self, code: int, reason: str) -> None:
        """Ask the session to close with ``code`` (the first request wins)."""
        if self._closing is None:
            self._closing = (code, reason)
        if self._main is not None:
            self._main.cancel()
        # A write in flight gets only the close budget from now on.
        if self._send_scope is not None:
            limit = trio.current_time() + self._ctx.settings.close_timeout_s
            self._send_scope.deadline = min(self._send_scope.deadline, limit)

    def heard(self) -> None:
        """Something (a frame, a pong) arrived from the client."""
        self._last_heard = trio.current_time()

    async def on_start(self) -> None:
        """Register the session's presence; it is reachable by fan-out meanwhile.

        Raises:
            PresenceUnavailable: the registry did not answer within
                ``admission_timeout_s``, or could not be reached.
        """
        registry = self._ctx.registry
        registry.add(self.session_handle, registering=True)
        try:
            await self._register()
        except BaseException:
            registry.remove(self.session_handle)
            # The registration may have landed all the same (a reply lost or
            # late): the presence heartbeat writes this user's exact count.
            registry.unregister_unsure(self.tenant_id, self.user_id)
            raise
        finally:
            registry.registration_done(self.session_handle)
        metrics.WEBSOCKET_ACTIVE_SESSIONS.inc()

    async def _register(self) -> None:
        """``presence.register`` within ``admission_timeout_s``; an outage is PresenceUnavailable."""
        with bounded_call(self._ctx.settings.admission_timeout_s, PresenceUnavailable):
            await self._ctx.presence.register(self.tenant_id, self.user_id, self._ctx.gateway_id)

    async def handle(self, message: Deliver) -> None:
        self._on_live(message)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """One incarnation without a mailbox: what ``run_actor`` does, minus the inbox.

        Nothing but the stop request ever came through a session's mailbox,
        and that comes through the supervisor's stop signal too.
        """
        await self.on_start()
        task_status.started()
        await self.run()
        await self.on_stop()

    async def run(self, inbox: Inbox[Deliver] | None = None) -> None:
        """Serve the socket until it closes or a graceful stop is requested.

        ``inbox`` is not read: a graceful stop comes through the stop signal
        (see ``_write_loop``), live frames through :attr:`session_handle`.
        """
        del inbox
        try:
            # The nursery's scope is the session's: ``close`` cancels it.
            async with trio.open_nursery() as nursery:
                self._main = nursery.cancel_scope
                if self._closing is not None:  # closed before it ran
                    nursery.cancel_scope.cancel()
                try:
                    await self._socket.send(
                        welcome_frame(
                            session_id=self.session_id,
                            tenant_id=self.tenant_id,
                            user_id=self.user_id,
                            heartbeat_s=self._ctx.settings.heartbeat_s,
                        )
                    )
                    self._tasks = nursery
                    self._context = contextvars.copy_context()
                    self._socket.watch(self._client_ready)
                    await self._write_loop(nursery)
                except SocketClosed:
                    nursery.cancel_scope.cancel()
                else:
                    self.close(CLOSE_GOING_AWAY, "server shutting down")
                finally:
                    self._tasks = None  # the session is ending: frames are not answered
        except BaseException as error:
            if _crashed(error):  # the client must not take a crash for a normal close
                self.close(CLOSE_INTERNAL, "internal error")
            raise
        finally:
            await self._finish()

    # --- the client's frames ---------------------------------------------------

    def _client_ready(self) -> None:
        """The socket holds a client frame (or has ended): answer in a task, unless one runs.

        Called by the socket, from whatever task it reads in; the task it
        starts has the session's context (its stop signal, not the reader's).
        """
        if self._answering or self._tasks is None or self._context is None:
            return
        self._answering = True
        self._context.run(self._tasks.start_soon, self._answer_client)

    async def _answer_client(self) -> None:
        try:
            await ClientRequests(self).answer_waiting()
        finally:
            # No checkpoint between finding nothing waiting and this: a frame
            # arriving later finds no task and starts one.
            self._answering = False

    # --- live traffic ------------------------------------------------------

    def wants(self, channel: str) -> bool:
        return self.included is None or channel in self.included

    def _on_live(self, deliver: Deliver) -> bool:
        """Take a live frame; True when the outbox is backlogged (see ``SessionHandle``)."""
        if self._closing is not None or not self.wants(deliver.message.channel):
            return False
        try:
            if self.resumption.hold(deliver):
                return False
        except ReplayOverflow:
            self.close(CLOSE_TRY_AGAIN, "client too slow (resume)")
            return False
        self.enqueue_live(deliver)
        return self._closing is None and self.outbox.backlogged

    async def make_room(self) -> None:
        """Wait while the outbox is half full, unless the client is what holds it up.

        The client holds it up when the writer has been blocked in one socket
        write for ``writer_stall_s`` (the client is not reading): then this
        returns, and returns at once on later calls until the writer writes
        again. A writer that is merely waiting for its turn (a busy process)
        is waited for. A client that reads, but slower than the burst comes,
        is waited for ``pace_budget_s`` in all until its outbox empties; past
        that it fills its outbox and is closed with 1013, instead of holding
        up every other session of the gateway. Returns at once when the
        session has ended.
        """
        if self._stalled_at == self._frames_written:
            return
        settings = self._ctx.settings
        stall_s = settings.writer_stall_s
        drained = self.outbox.drained
        mark, paced = self._pacing or (drained, 0.0)
        if mark != drained:  # the outbox emptied since: a new burst
            paced = 0.0
        started = trio.current_time()
        give_up = started + settings.pace_budget_s - paced
        try:
            while self.outbox.backlogged and self._closing is None:
                now = trio.current_time()
                if now >= give_up:  # reads, but too slowly for this burst
                    return
                sending_since = self._sending_since
                if sending_since is not None and now - sending_since >= stall_s:
                    self._stalled_at = self._frames_written
                    return
                # Woken by the writer taking a frame, by the session ending,
                # or when the write in progress (or the next one) would count
                # as stuck.
                with trio.move_on_at(min(give_up, (sending_since or now) + stall_s)):
                    await self.outbox.wait_taken()
        finally:
            self._pacing = (drained, paced + trio.current_time() - started)

    def enqueue_live(self, deliver: Deliver, *, released: bool = False) -> None:
        """Queue a live frame unless already sent; a full outbox closes with 1013.

        A ``released`` frame (out of a hold) is queued even when the outbox is full.
        """
        message = deliver.message
        if message.id in self.sent:
            return
        outgoing = Outgoing(
            text=deliver.frame,
            id=message.id,
            created_at=message.created_at,
            live=True,
            trace=deliver.trace,
            released=released,
        )
        if not self.outbox.put_nowait(outgoing):
            self.close(CLOSE_TRY_AGAIN, "client too slow")
            return
        self.sent.add(message.id, message.created_at)

    def release(self, held: list[Deliver]) -> None:
        """Queue what a hold kept back, in order, whatever room the outbox has.

        They are bounded by ``replay_hold_limit`` already, and a client that
        reads must not be closed because a hold ended: only later live frames
        count against the outbox (and are paced, as it is backlogged now).
        """
        for deliver in held:
            # Subscriptions may have changed while it was held.
            if self._closing is None and self.wants(deliver.message.channel):
                self.enqueue_live(deliver, released=True)

    def end_opening(self) -> None:
        self.release(self.resumption.end_opening())

    async def fail_after(self, text: str, reason: str) -> None:
        """Send ``text`` after what is queued, then close with 1011 (internal error).

        Live frames are dropped from now on (they stay pending in storage).
        """
        if self._closing is not None:
            return
        self._closing = (CLOSE_INTERNAL, reason)
        await self.outbox.put(Outgoing(text=text, then_close=self._closing))

    # --- the writer ----------------------------------------------------------

    async def _write_loop(self, nursery: trio.Nursery) -> None:
        """Write queued frames; between them, keep the heartbeat and the opening hold.

        Returns when a graceful stop is requested (the supervisor's stop
        signal; live frames are queued by :meth:`_on_live`, never mailed).
        While idle it waits with no deadline of its own: the edge's
        :class:`~notifactor.edge.session_clock.SessionClock` wakes it for
        the next heartbeat or the end of the opening hold, and a stop
        request wakes it too.
        """
        stop = optional_stop_signal()
        if stop is not None:
            stop.register(self.outbox.wake_writer)
        settings = self._ctx.settings
        clock = self._ctx.clock
        period = settings.heartbeat_s
        next_beat = trio.current_time() + period
        opening_ends = trio.current_time() + settings.resume_grace_s
        alarm = math.inf  # the earliest alarm this writer has set and not seen ring
        try:
            while True:
                now = trio.current_time()
                if now >= alarm:
                    alarm = math.inf
                if self.resumption.opening and now >= opening_ends:
                    self.end_opening()
                if now >= next_beat:
                    if now - self._last_heard > 2 * period:
                        self.close(CLOSE_POLICY, "heartbeat timeout")
                        return
                    if not self._pinging:  # one ping at a time, however long its pong takes
                        self._pinging = True
                        nursery.start_soon(self._ping)
                    next_beat += period
                outgoing = self.outbox.take_nowait()
                if outgoing is not None:
                    await self._write(outgoing)
                    if outgoing.then_close is not None:
                        self.close(*outgoing.then_close)
                        await trio.lowlevel.checkpoint()  # the session is cancelled now
                    continue
                if stop is not None and stop.requested:
                    return
                deadline = min(next_beat, opening_ends if self.resumption.opening else math.inf)
                if deadline < alarm:  # an alarm already set rings first; then look again
                    alarm = deadline
                    clock.wake_at(deadline, self.outbox.wake_writer)
                await self.outbox.wait_queued()
        finally:
            if stop is not None:
                stop.unregister(self.outbox.wake_writer)

    async def _write(self, outgoing: Outgoing) -> None:
        span = None
        if outgoing.trace is not None:
            span = start_child_span(
                "edge.socket_write", outgoing.trace, {"notifactor.session_id": self.session_id}
            )
        # Shielded: a write cancelled half-way would corrupt the stream and
        # lose the close frame; it is bounded by its own deadline.
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._ctx.settings.send_timeout_s
                self._send_scope = scope
                self._sending_since = trio.current_time()
                await self._socket.send(outgoing.text)
        except BaseException as error:
            if span is not None:
                end_item_span(span, type(error).__name__)
            raise
        self._send_scope = None
        self._sending_since = None
        self._frames_written += 1
        if span is not None:
            end_item_span(span, "write timed out" if scope.cancelled_caught else None)
        if scope.cancelled_caught:
            self.close(CLOSE_TRY_AGAIN, "client too slow (write timed out)")
            await trio.lowlevel.checkpoint()  # the session is cancelled now
        if outgoing.id is not None and outgoing.created_at is not None:
            await self._written(outgoing.id, outgoing.created_at, outgoing)

    async def _written(self, ident: str, created_at: datetime, outgoing: Outgoing) -> None:
        metrics.NOTIFICATIONS_DELIVERED.inc()
        if outgoing.live:
            metrics.DELIVERY_LATENCY_MS.observe(
                max(0.0, time.time() - created_at.timestamp()) * 1000
            )
        if outgoing.record:
            await self._ctx.recorder.record(self.update(ident, created_at, DeliveryState.DELIVERED))

    async def _ping(self) -> None:
        try:
            await self._socket.ping()
        except SocketClosed:
            return
        finally:
            self._pinging = False
        self.heard()

    def update(self, ident: str, created_at: datetime, state: DeliveryState) -> DeliveryUpdate:
        """A delivery-state update of this session's user."""
        return DeliveryUpdate(
            tenant_id=self.tenant_id,
            notification_id=ident,
            recipient_id=self.user_id,
            created_at=created_at,
            state=state,
            event_time=datetime.now(UTC),
        )

    # --- shutdown ------------------------------------------------------------

    async def _finish(self) -> None:
        self._ctx.registry.remove(self.session_handle)
        metrics.WEBSOCKET_ACTIVE_SESSIONS.dec()
        code, reason = self._closing or (1000, "")
        if self._closing is not None:
            metrics.WEBSOCKET_CLOSES.labels(code=str(code)).inc()
        else:  # ended quietly (the client went away): over all the same
            self._closing = (code, reason)
        self.outbox.wake_waiters()  # nobody takes frames any more: stop waiting for room
        settings = self._ctx.settings
        with trio.CancelScope(shield=True):
            with trio.move_on_after(settings.close_timeout_s):
                await self._socket.close(code, reason)
            if self._ctx.gateway_stopping():
                return  # the edge drops every registration of this gateway at once
            unregistered = False
            with trio.move_on_after(settings.close_timeout_s):
                try:
                    await self._ctx.presence.unregister(
                        self.tenant_id, self.user_id, self._ctx.gateway_id
                    )
                    unregistered = True
                except Exception as error:
                    log.warning("could not unregister session %s: %s", self.session_id, error)
            if not unregistered:  # the presence heartbeat settles this user's count
                self._ctx.registry.unregister_unsure(self.tenant_id, self.user_id)


def _crashed(error: BaseException) -> bool:
    """Whether ``error`` (or a group of them) holds more than cancellations."""
    if isinstance(error, BaseExceptionGroup):
        return any(_crashed(inner) for inner in error.exceptions)
    return isinstance(error, Exception)
