"""The reader of a session: client frames (SPEC §5) and their answers.

Runs in a task of the session's only while client frames are waiting (the
socket calls the session back when one arrives, see
:meth:`~notifactor.edge.socket_port.WebSocket.watch`): an idle session keeps
no task for its client. Every frame counts as a sign of life for the
heartbeat. Answers go through the session's outbox, waiting for room (a
client that floods requests without reading slows only itself: the socket
takes one frame at a time, and TCP holds back the rest).

Only a ``resume`` (or the end of ``resume_grace_s``) ends the opening hold:
``subscribe``, ``ping``, ``ack`` and the rest are answered while live frames
stay held, so a client may subscribe before it resumes and still get the
replay ahead of what arrived live meanwhile.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from notifactor.actors.session_outbox import Outgoing
from notifactor.actors.session_resume import look_back, replay, replayed_frame
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import InboxEntry
from notifactor.domain.resume import ReplayMerge
from notifactor.domain.ws_frames import (
    PONG_FRAME,
    Ack,
    FrameProblem,
    Ping,
    Resume,
    Subscribe,
    Unsubscribe,
    error_frame,
    parse_client_frame,
    resumed_frame,
    subscribed_frame,
)
from notifactor.edge.registry import Deliver
from notifactor.edge.socket_port import SocketClosed
from notifactor.ports.notification_store import StoreError

if TYPE_CHECKING:
    from notifactor.actors.session import SessionActor

log = logging.getLogger("notifactor.session")


class ClientRequests:
    """Reads and answers the frames of ``session``'s client."""

    __slots__ = ("_session",)

    def __init__(self, session: SessionActor) -> None:
        self._session = session

    async def answer_waiting(self) -> None:
        """Answer frames until none is waiting; end the session if the socket has ended."""
        session = self._session
        socket = session.socket
        try:
            while (raw := socket.receive_nowait()) is not None:
                session.heard()
                await self._on_frame(raw)
        except SocketClosed:
            session.close_quietly()

    async def _on_frame(self, raw: str | bytes) -> None:
        session = self._session
        frame = parse_client_frame(raw)
        if isinstance(frame, Resume) and session.resumption.opening:
            merge = session.resumption.start_first(frame.position)
            if merge is not None:
                await self._resume(frame, merge)
                return
        match frame:
            case FrameProblem():
                await self._emit(error_frame(frame))
            case Subscribe(channels=channels):
                session.included = (session.included or set()) | set(channels)
                await self._emit(subscribed_frame(sorted(session.included)))
            case Unsubscribe(channels=channels):
                if session.included is None:
                    await self._problem(
                        "not_subscribed", "this session receives every channel; subscribe first"
                    )
                    return
                session.included -= set(channels)
                await self._emit(subscribed_frame(sorted(session.included)))
            case Ack(id=ident):
                await self._ack(ident)
            case Resume():
                await self._resume(frame)
            case Ping():
                await self._emit(PONG_FRAME)

    async def _emit(self, text: str) -> None:
        await self._session.outbox.put(Outgoing(text=text))

    async def _problem(self, code: str, message: str) -> None:
        await self._emit(error_frame(FrameProblem(code=code, message=message)))

    async def _ack(self, ident: str) -> None:
        session = self._session
        ctx = session.context
        created_at = session.sent.get(ident)
        if created_at is None:
            try:
                view = await ctx.store.get_notification(session.tenant_id, ident)
            except StoreError:
                await self._problem("unavailable", "could not record the ack; retry later")
                return
            if view is None or view.notification.user_id != session.user_id:
                await self._problem("unknown_notification", f"no notification {ident[:128]!r}")
                return
            created_at = view.notification.created_at
        await ctx.recorder.record(session.update(ident, created_at, DeliveryState.ACKED))

    async def _resume(self, frame: Resume, merge: ReplayMerge[Deliver] | None = None) -> None:
        session = self._session
        if merge is None:
            merge = session.resumption.start(frame.position)
            if merge is None:
                await self._problem("resume_in_progress", "a resume is already running")
                return
        settings = session.context.settings
        # What the session was sent before this resume: the replay's own sends
        # must not push these out of the sent window before it reaches them.
        send = partial(self._replay_one, session.sent.ids())
        try:
            count = await replay(
                session.context.store,
                tenant_id=session.tenant_id,
                user_id=session.user_id,
                since=frame.since,
                page=settings.replay_page,
                merge=merge,
                send=send,
            )
        except StoreError as error:
            log.warning("resume of session %s failed: %s", session.session_id, error)
            # Going live would skip what was not replayed: the client reconnects
            # and resumes from its cursor again. What was held stays pending.
            session.resumption.finish()
            problem = FrameProblem(
                code="resume_failed", message="storage is unavailable; reconnect and resume again"
            )
            await session.fail_after(error_frame(problem), "resume failed")
            return
        await self._emit(resumed_frame(count))
        try:
            await look_back(
                session.context.store,
                tenant_id=session.tenant_id,
                user_id=session.user_id,
                since=frame.since,
                lookback_us=round(settings.resume_lookback_s * 1_000_000),
                page=settings.replay_page,
                merge=merge,
                send=send,
            )
        except StoreError as error:  # the look back is a second chance; live traffic goes on
            log.warning("look back of session %s failed: %s", session.session_id, error)
        # No checkpoint from here on: live frames go behind the released ones.
        session.release(session.resumption.finish())

    async def _replay_one(self, sent_before: frozenset[str], entry: InboxEntry) -> bool:
        session = self._session
        notification = entry.notification
        if not session.wants(notification.channel):
            return False
        if notification.id in sent_before:
            return False
        if not session.sent.add(notification.id, notification.created_at):
            return False
        await session.outbox.put(replayed_frame(entry))
        return True
