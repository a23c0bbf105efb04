"""The session actor against fakes: frames, fan-out, slow consumers, heartbeat, resume, acks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from notifactor.actors import ActorRef
from notifactor.actors.session import SessionActor
from notifactor.actors.session_requests import ClientRequests
from notifactor.actors.stop import StopSignal, optional_stop_signal
from notifactor.config import Config
from notifactor.domain.cursor import Position, cursor_for, inbox_start
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import (
    DeliveryUpdate,
    InboxEntry,
    Notification,
    NotificationView,
)
from notifactor.domain.routing import RoutedMessage
from notifactor.domain.timestamps import from_us
from notifactor.domain.ws_frames import notification_frame
from notifactor.edge.context import EdgeContext
from notifactor.edge.message_handoff import HandoffClosed, MessageHandoff
from notifactor.edge.registry import Deliver, SessionRegistry
from notifactor.edge.settings import EdgeSettings
from notifactor.edge.socket_port import SocketClosed
from notifactor.observability.tracing import (
    build_tracer_provider,
    consume_span,
    parent_context,
    use_tracer_provider,
)
from notifactor.supervisors import Supervisor, actor_spec
from tests.trio_tasks import tasks_running

BASE = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


class FakeSocket:
    """A socket whose client side the test drives (client frames go through a real handoff)."""

    def __init__(self, *, pongs: bool = True) -> None:
        self.messages = MessageHandoff()
        self._to_client, self.from_server = trio.open_memory_channel[str](10_000)
        self.pongs = pongs
        self.pings_waiting = 0
        self.writable = trio.Event()
        self.writable.set()
        self.closed_with: tuple[int, str] | None = None
        self.closed = trio.Event()

    def watch(self, ready: Callable[[], None]) -> None:
        self.messages.watch(ready)

    def receive_nowait(self) -> str | bytes | None:
        try:
            return self.messages.take()
        except HandoffClosed:
            raise SocketClosed(1000, "client left") from None

    async def send(self, text: str) -> None:
        if self.closed_with is not None:
            raise SocketClosed(*self.closed_with)
        await self.writable.wait()
        await self._to_client.send(text)

    async def ping(self) -> None:
        self.pings_waiting += 1
        try:
            if not self.pongs:
                await trio.sleep_forever()
        finally:
            self.pings_waiting -= 1

    async def close(self, code: int, reason: str) -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason)
        self.closed.set()

    async def frame(self) -> dict[str, Any]:
        with trio.fail_after(5):
            value: dict[str, Any] = json.loads(await self.from_server.receive())
            return value

    async def say(self, value: Any) -> None:
        await self.messages.put(value if isinstance(value, str) else json.dumps(value))

    def leave(self) -> None:
        """The client goes away (its reader sees the end of the connection)."""
        self.messages.end()


@attrs.define
class FakePresence:
    registered: list[tuple[str, str, str]] = attrs.Factory(list)
    unregistered: list[tuple[str, str, str]] = attrs.Factory(list)

    async def register(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        self.registered.append((tenant_id, user_id, gateway_id))

    async def unregister(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        self.unregistered.append((tenant_id, user_id, gateway_id))


@attrs.define
class FakeStore:
    notifications: list[Notification] = attrs.Factory(list)
    gate: trio.Event | None = None
    states: dict[str, DeliveryState] = attrs.Factory(dict)  # by id; pending if absent
    state_at_us: dict[str, int] = attrs.Factory(dict)  # when each of ``states`` was reached

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        if self.gate is not None:
            await self.gate.wait()
        after = inbox_start(cursor)  # what a real store does: by position, exclusive
        mine = sorted(
            (
                n
                for n in self.notifications
                if (n.tenant_id, n.user_id) == (tenant_id, user_id)
                and Position(time_us=n.created_at_us, key=n.id) > after
            ),
            key=lambda n: (n.created_at, n.id),
        )
        return [
            InboxEntry(
                notification=n,
                cursor=cursor_for(n),
                state=self.states.get(n.id, DeliveryState.PENDING),
                state_at_us=self.state_at_us.get(n.id),
            )
            for n in mine[:limit]
        ]

    async def get_notification(
        self, tenant_id: str, notification_id: str
    ) -> NotificationView | None:
        for n in self.notifications:
            if n.tenant_id == tenant_id and n.id == notification_id:
                at_us = self.state_at_us.get(n.id)
                return NotificationView(
                    notification=n,
                    status=self.states.get(n.id, DeliveryState.PENDING),
                    attempts=1,
                    last_error=None,
                    updated_at=n.created_at if at_us is None else from_us(at_us),
                )
        return None


@attrs.define
class FakeRecorder:
    updates: list[DeliveryUpdate] = attrs.Factory(list)

    async def record(self, update: DeliveryUpdate) -> None:
        self.updates.append(update)

    def states(self, state: DeliveryState) -> list[str]:
        return [u.notification_id for u in self.updates if u.state is state]


def notification(
    n: int, *, tenant: str = "t", user: str = "u", channel: str = "alerts"
) -> Notification:
    return Notification(
        tenant_id=tenant,
        id=f"id{n:04d}",
        user_id=user,
        channel=channel,
        content=f"c{n}",
        created_at=BASE + timedelta(milliseconds=n),
    )


def deliver(n: int, **kw: Any) -> Deliver:
    note = notification(n, **kw)
    message = RoutedMessage(
        id=note.id,
        tenant_id=note.tenant_id,
        user_id=note.user_id,
        channel=note.channel,
        content=note.content,
        priority=note.priority,
        metadata={},
        created_at=note.created_at,
        cursor=cursor_for(note),
        attempt=1,
        traceparent="",
    )
    frame = notification_frame(
        id=note.id,
        channel=note.channel,
        content=note.content,
        priority=note.priority,
        metadata={},
        created_at=note.created_at,
        cursor=message.cursor,
    )
    return Deliver(message=message, frame=frame)


@attrs.define
class Env:
    registry: SessionRegistry
    presence: FakePresence
    store: FakeStore
    recorder: FakeRecorder
    context: EdgeContext
    supervisor: Supervisor | None = None


def make_env(settings: EdgeSettings | None = None, store: FakeStore | None = None) -> Env:
    registry, presence, recorder = SessionRegistry(), FakePresence(), FakeRecorder()
    store = store or FakeStore()
    context = EdgeContext(
        gateway_id="gw-test",
        registry=registry,
        presence=presence,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        recorder=recorder,
        settings=settings or EdgeSettings(heartbeat_s=10, outbox_size=4, close_timeout_s=1),
    )
    return Env(registry, presence, store, recorder, context)


@asynccontextmanager
async def sessions(
    env: Env, specs: Sequence[tuple[str, str, FakeSocket]]
) -> AsyncIterator[list[SessionActor]]:
    actors: list[SessionActor] = []
    children = []
    for index, (tenant, user, socket) in enumerate(specs):
        ref: ActorRef[Deliver] = ActorRef(f"session-{index}", mailbox_size=8)
        actor = SessionActor(
            session_id=f"s{index}",
            tenant_id=tenant,
            user_id=user,
            socket=socket,
            ref=ref,
            context=env.context,
        )
        actors.append(actor)
        children.append(actor_spec(ref, lambda a=actor: a, restart="temporary"))  # type: ignore[misc]
    env.supervisor = Supervisor("sessions", children)
    async with trio.open_nursery() as edge:
        edge.start_soon(env.context.clock.run)  # the edge runs it for its sessions
        async with trio.open_nursery() as nursery:
            await nursery.start(env.supervisor.run)
            yield actors
            env.supervisor.request_stop()
        edge.cancel_scope.cancel()


async def test_welcome_ping_errors_and_subscriptions() -> None:
    env, socket = make_env(), FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        welcome = await socket.frame()
        assert welcome == {
            "type": "welcome",
            "session_id": "s0",
            "tenant_id": "t",
            "user_id": "u",
            "heartbeat_s": 10,
        }
        assert env.presence.registered == [("t", "u", "gw-test")]
        await socket.say({"type": "ping"})
        assert await socket.frame() == {"type": "pong"}
        await socket.say("{nope")
        assert (await socket.frame())["code"] == "invalid_json"
        await socket.say({"type": "unsubscribe", "channels": ["x"]})
        assert (await socket.frame())["code"] == "not_subscribed"
        await socket.say({"type": "subscribe", "channels": ["news", "alerts"]})
        assert await socket.frame() == {"type": "subscribed", "channels": ["alerts", "news"]}
        await socket.say({"type": "unsubscribe", "channels": ["news"]})
        assert await socket.frame() == {"type": "subscribed", "channels": ["alerts"]}
        env.registry.fan_out(deliver(1, channel="news"))
        env.registry.fan_out(deliver(2))
        env.registry.fan_out(deliver(2))  # a repeat (retry): sent once
        env.registry.fan_out(deliver(3, tenant="other"))  # another tenant: never here
        frame = await socket.frame()
        assert frame["id"] == "id0002"
        assert frame["type"] == "notification"
        await socket.say({"type": "ping"})
        assert await socket.frame() == {"type": "pong"}
    assert socket.closed_with == (1001, "server shutting down")
    assert env.presence.unregistered == [("t", "u", "gw-test")]
    assert env.recorder.states(DeliveryState.DELIVERED) == ["id0002"]


async def test_slow_consumer_is_closed_1013_and_others_keep_going() -> None:
    env = make_env()
    slow, fast = FakeSocket(), FakeSocket()
    async with sessions(env, [("t", "u", slow), ("t", "u", fast)]) as (slow_actor, fast_actor):
        await slow.frame()
        await fast.frame()
        slow.writable = trio.Event()  # the slow client stops reading
        for n in range(1, 30):
            env.registry.fan_out(deliver(n))
            await trio.testing.wait_all_tasks_blocked()
            assert (await fast.frame())["id"] == f"id{n:04d}"
        with trio.fail_after(5):
            await slow.closed.wait()
        assert slow.closed_with is not None
        assert slow.closed_with[0] == 1013
        assert slow_actor.close_code == 1013
        assert fast_actor.close_code is None
        slow.writable.set()


async def test_a_client_that_talks_but_never_answers_pings_has_one_ping_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Frames keep it alive; the server does not pile up a ping per heartbeat."""
    env = make_env(EdgeSettings(heartbeat_s=5, close_timeout_s=1))
    deaf = FakeSocket(pongs=False)
    async with sessions(env, [("t", "u", deaf)]):
        await deaf.frame()  # welcome
        for _ in range(20):  # 100 s: twenty heartbeats
            await trio.sleep(5)
            await deaf.say({"type": "ping"})
            assert (await deaf.frame())["type"] == "pong"
        assert deaf.closed_with is None
        assert deaf.pings_waiting == 1


async def test_silent_client_is_closed_after_two_heartbeats(
    autojump_clock: trio.testing.MockClock,
) -> None:
    env = make_env(EdgeSettings(heartbeat_s=5, close_timeout_s=1))
    silent, chatty = FakeSocket(pongs=False), FakeSocket(pongs=True)
    async with sessions(env, [("t", "u", silent), ("t", "v", chatty)]):
        start = trio.current_time()
        await silent.closed.wait()
        assert silent.closed_with == (1008, "heartbeat timeout")
        assert 10 <= trio.current_time() - start <= 15
        assert chatty.closed_with is None


async def test_resume_replays_then_switches_to_live_without_gap_or_duplicate() -> None:
    gate = trio.Event()
    store = FakeStore(notifications=[notification(n) for n in range(1, 11)], gate=gate)
    store.states = {f"id{n:04d}": DeliveryState.DELIVERED for n in range(1, 5)}  # the client's
    env = make_env(EdgeSettings(outbox_size=64, replay_page=3), store)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        await socket.frame()
        await socket.say({"type": "resume", "since": cursor_for(notification(4))})
        await trio.testing.wait_all_tasks_blocked()
        # Live traffic while the replay is still reading storage: an old one
        # (before the cursor: a late retry the client may never have had), one
        # the replay also returns, and two new ones.
        for n in (2, 7, 11, 12):
            env.registry.fan_out(deliver(n))
        store.notifications.append(notification(11))
        gate.set()
        frames = await frames_until(socket, "resumed")
        assert [f["id"] for f in frames[:-1]] == [f"id{n:04d}" for n in range(5, 12)]
        assert frames[-1] == {"type": "resumed", "count": 7}
        # Then what was held and not replayed, in arrival order.
        assert (await socket.frame())["id"] == "id0002"
        assert (await socket.frame())["id"] == "id0012"
        env.registry.fan_out(deliver(13))
        assert (await socket.frame())["id"] == "id0013"


async def test_acks_only_for_own_notifications() -> None:
    store = FakeStore(notifications=[notification(1), notification(2, user="someone-else")])
    env = make_env(store=store)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        await socket.frame()
        env.registry.fan_out(deliver(3))
        await socket.frame()
        await socket.say({"type": "ack", "id": "id0003"})  # sent on this session
        await socket.say({"type": "ack", "id": "id0001"})  # own, from storage
        await socket.say({"type": "ack", "id": "id0002"})  # another user's
        assert (await socket.frame())["code"] == "unknown_notification"
        await socket.say({"type": "ack", "id": "nope"})
        assert (await socket.frame())["code"] == "unknown_notification"
    assert sorted(env.recorder.states(DeliveryState.ACKED)) == ["id0001", "id0003"]
    assert all(u.tenant_id == "t" and u.recipient_id == "u" for u in env.recorder.updates)


async def test_client_leaving_ends_the_session() -> None:
    env, socket = make_env(), FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        await socket.frame()
        socket.leave()
        with trio.fail_after(5):
            await socket.closed.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert len(env.registry) == 0
        assert env.presence.unregistered == [("t", "u", "gw-test")]


async def frames_until(socket: FakeSocket, kind: str) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await socket.frame()
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def test_socket_write_joins_the_fan_out_trace() -> None:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(Config(instance_id="t"), SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        env = make_env(EdgeSettings(heartbeat_s=10, outbox_size=4, send_timeout_s=0.2))
        socket = FakeSocket()
        async with sessions(env, [("t", "u", socket)]) as (actor,):
            await socket.frame()
            with consume_span("edge.fan_out", None) as fan_out:
                traced = attrs.evolve(deliver(1), trace=parent_context(fan_out))
            env.registry.fan_out(traced)
            assert (await socket.frame())["id"] == "id0001"
            env.registry.fan_out(deliver(2))  # tracing context absent: no span
            assert (await socket.frame())["id"] == "id0002"
            socket.writable = trio.Event()  # the next write times out
            with consume_span("edge.fan_out", None) as stuck_fan_out:
                stuck = attrs.evolve(deliver(3), trace=parent_context(stuck_fan_out))
            env.registry.fan_out(stuck)
            with trio.fail_after(5):
                await socket.closed.wait()
            assert actor.close_code == 1013
            socket.writable.set()
    finally:
        use_tracer_provider(None)
        provider.shutdown()
    writes = [s for s in exporter.get_finished_spans() if s.name == "edge.socket_write"]
    fan_outs = [s for s in exporter.get_finished_spans() if s.name == "edge.fan_out"]
    assert len(writes) == 2
    for write, parent in zip(writes, fan_outs, strict=True):
        assert write.parent is not None
        assert write.parent.span_id == parent.context.span_id
        assert write.context.trace_id == parent.context.trace_id
        assert write.attributes is not None
        assert write.attributes["notifactor.session_id"] == "s0"
    assert writes[0].status.status_code is StatusCode.UNSET
    assert writes[1].status.status_code is StatusCode.ERROR


async def test_a_stopping_gateway_leaves_presence_to_the_edge() -> None:
    env = make_env()
    env.context = attrs.evolve(env.context, gateway_stopping=lambda: True)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        await socket.frame()
    assert socket.closed_with == (1001, "server shutting down")
    assert env.presence.registered == [("t", "u", "gw-test")]
    assert env.presence.unregistered == []  # one drop_gateway by the edge instead


async def idle_tasks(env: Env, count: int) -> tuple[int, int]:
    """Tasks of the run with ``count`` idle sessions, then after each answered a ping."""
    sockets = [FakeSocket() for _ in range(count)]
    async with sessions(env, [("t", f"u{i}", socket) for i, socket in enumerate(sockets)]):
        for socket in sockets:
            assert (await socket.frame())["type"] == "welcome"
        await trio.testing.wait_all_tasks_blocked()
        idle = tasks_running()
        for socket in sockets:
            await socket.say({"type": "ping"})
            assert (await socket.frame())["type"] == "pong"
        await trio.testing.wait_all_tasks_blocked()
        after_frames = tasks_running()
    return idle, after_frames


async def test_an_idle_session_keeps_one_task_and_answers_frames_in_passing() -> None:
    """No task waits for client frames or sleeps until the heartbeat: one per session.

    An idle session is mostly what it keeps, and a gateway holds tens of
    thousands; the task answering a frame ends once nothing is waiting.
    """
    one, one_after = await idle_tasks(make_env(), 1)
    four, four_after = await idle_tasks(make_env(), 4)
    assert (four - one) / 3 == 1
    assert (one_after, four_after) == (one, four)


async def test_frames_are_answered_in_the_sessions_own_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The frame arrives in the socket reader's task; the answer runs as the session's."""
    seen: list[StopSignal | None] = []
    answer = ClientRequests.answer_waiting

    async def spy(self: ClientRequests) -> None:
        seen.append(optional_stop_signal())
        await answer(self)

    monkeypatch.setattr(ClientRequests, "answer_waiting", spy)
    env, socket = make_env(), FakeSocket()
    async with sessions(env, [("t", "u1", socket)]):
        assert (await socket.frame())["type"] == "welcome"
        assert optional_stop_signal() is None  # the test's task: not a supervised child
        await socket.say({"type": "ping"})
        assert (await socket.frame())["type"] == "pong"
    assert len(seen) == 1
    assert seen[0] is not None  # the session's supervisor child signal, not the caller's


async def resume_looking_back(
    store: FakeStore, since: Notification, late: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Env]:
    """Resume from ``since`` with an hour of look back.

    Returns:
        The frames up to ``resumed``, the ``late`` frames after it (nothing
        else comes), and the session's environment.
    """
    env = make_env(EdgeSettings(outbox_size=64, replay_page=2, resume_lookback_s=3600), store)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        await socket.frame()
        await socket.say({"type": "resume", "since": cursor_for(since)})
        frames = await frames_until(socket, "resumed")
        after = [await socket.frame() for _ in range(late)]
        await socket.say({"type": "ping"})
        assert (await socket.frame())["type"] == "pong"  # nothing else came
    return frames, after, env


async def test_resume_also_sends_what_was_never_written_behind_the_cursor() -> None:
    """A notification routed late keeps its place: it may sit behind a newer cursor.

    The client got 1, 2 and 5 (its cursor is 5's); 3 was routed while its
    presence was lost (pending), 4 is still being retried, 6 is newer. A
    resume replays what follows the cursor (6) and counts just that in
    ``resumed`` (SPEC §5), then sends 3 and 4 (never written to a socket),
    in order, as late live deliveries; a pending one beyond the look back
    stays as it is.
    """
    store = FakeStore(notifications=[notification(n) for n in range(1, 7)])
    old = notification(0)  # pending, but two hours before the cursor
    store.notifications.append(
        attrs.evolve(old, created_at=notification(5).created_at - timedelta(hours=2))
    )
    store.states = {
        **{f"id{n:04d}": DeliveryState.DELIVERED for n in (1, 2, 5)},
        "id0004": DeliveryState.RETRYING,
    }
    frames, after, _ = await resume_looking_back(store, notification(5), late=2)
    assert [f["id"] for f in frames[:-1]] == ["id0006"]
    assert frames[-1] == {"type": "resumed", "count": 1}
    assert [f["id"] for f in after] == ["id0003", "id0004"]


async def test_resume_also_sends_what_was_written_behind_the_cursor_after_its_notification() -> (
    None
):
    """A late one written after the cursor's notification may have died with the connection.

    The client acks what it processes; its cursor is 5's, acked at t=500.
    3 was claimed late from a dispatcher that died, and written at t=700 to
    the connection that then dropped: the client never acked it, so the
    look back sends it again. 1 and 2 were written before that ack
    (t=100, 200) and are not sent again; 4 was acked.
    """
    store = FakeStore(notifications=[notification(n) for n in range(1, 6)])
    store.states = {
        "id0001": DeliveryState.DELIVERED,
        "id0002": DeliveryState.DELIVERED,
        "id0003": DeliveryState.DELIVERED,
        "id0004": DeliveryState.ACKED,
        "id0005": DeliveryState.ACKED,
    }
    store.state_at_us = {"id0001": 100, "id0002": 200, "id0003": 700, "id0004": 800, "id0005": 500}
    frames, after, env = await resume_looking_back(store, notification(5), late=1)
    assert frames == [{"type": "resumed", "count": 0}]
    assert [f["id"] for f in after] == ["id0003"]
    assert env.recorder.states(DeliveryState.DELIVERED) == []  # already stored as delivered


@pytest.mark.parametrize("cursor_state", [DeliveryState.DELIVERED, DeliveryState.PENDING])
async def test_unless_the_cursor_notification_was_acked_nothing_written_is_sent_again(
    cursor_state: DeliveryState,
) -> None:
    """A client that does not ack: 1 and 2 went to it and to a lagging tab after 3 did.

    Their stored times (the last write, to any session) are after the
    cursor's, but this client had them: they are not sent again.
    """
    store = FakeStore(notifications=[notification(n) for n in range(1, 4)])
    store.states = {
        "id0001": DeliveryState.DELIVERED,
        "id0002": DeliveryState.DELIVERED,
        "id0003": cursor_state,
    }
    store.state_at_us = {"id0001": 900, "id0002": 950, "id0003": 500}
    frames, _, _ = await resume_looking_back(store, notification(3), late=0)
    assert frames == [{"type": "resumed", "count": 0}]


async def test_a_resume_in_the_same_session_skips_what_the_sent_window_remembers() -> None:
    """The replay's own sends do not push out ids it has not reached yet.

    The session was sent 1..12 live and remembers the last 8 (5..12). A
    resume from 1's cursor re-sends only what the window forgot (2..4), not
    everything after the cursor.
    """
    store = FakeStore(notifications=[notification(n) for n in range(1, 13)])
    store.states = {f"id{n:04d}": DeliveryState.DELIVERED for n in range(1, 13)}
    env = make_env(EdgeSettings(outbox_size=64, replay_page=3, sent_window=8), store)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        await socket.frame()
        for n in range(1, 13):
            env.registry.fan_out(deliver(n))
        live = [await socket.frame() for _ in range(12)]
        assert [f["id"] for f in live] == [f"id{n:04d}" for n in range(1, 13)]
        await socket.say({"type": "resume", "since": cursor_for(notification(1))})
        frames = await frames_until(socket, "resumed")
    assert [f["id"] for f in frames[:-1]] == ["id0002", "id0003", "id0004"]
    assert frames[-1] == {"type": "resumed", "count": 3}
