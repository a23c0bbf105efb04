"""The session's holds against fakes: what a hold releases, what ends it, and failures.

Each test pins one defect a review found in the opening hold, the resume
merge or the session's close codes (see docs/websocket.md).
"""

from __future__ import annotations

from typing import Any

import attrs
import trio
import trio.testing

from notifactor.domain.cursor import CursorKind, Position, cursor_for, encode_cursor
from notifactor.domain.notification import InboxEntry
from notifactor.edge.settings import EdgeSettings
from notifactor.ports.notification_store import StoreError
from tests.actors.test_session_actor import (
    FakeSocket,
    FakeStore,
    deliver,
    frames_until,
    make_env,
    notification,
    sessions,
)

FROM_THE_START = encode_cursor(CursorKind.INBOX, Position(time_us=0, key=""))


def ids(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["id"] for frame in frames if frame["type"] == "notification"]


def nid(n: int) -> str:
    return f"id{n:04d}"


async def nothing_queued(socket: FakeSocket) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert socket.from_server.statistics().current_buffer_used == 0


@attrs.define
class PagedStore(FakeStore):
    """A FakeStore whose reads after the first page wait for ``later``, then maybe fail.

    Its tests switch the resume's look back off: it would take the first read.
    """

    later: trio.Event = attrs.Factory(trio.Event)
    failure: BaseException | None = None
    reads: int = 0

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        self.reads += 1
        if self.reads > 1:
            await self.later.wait()
            if self.failure is not None:
                raise self.failure
        return await super().inbox_after(tenant_id, user_id, cursor, limit)


async def test_a_burst_held_during_the_opening_is_released_beyond_the_outbox() -> None:
    """Defect 1: the end of the opening hold closed a reading client with 1013."""
    env = make_env(EdgeSettings(heartbeat_s=10, outbox_size=4, resume_grace_s=0.2))
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]) as (actor,):
        await socket.frame()
        for n in range(1, 21):  # five outboxes' worth, all held
            env.registry.fan_out(deliver(n))
        got = [(await socket.frame())["id"] for _ in range(20)]
        assert got == [nid(n) for n in range(1, 21)]
        assert actor.close_code is None
        # After the release, live frames are paced again: one more is fine.
        env.registry.fan_out(deliver(21))
        assert (await socket.frame())["id"] == nid(21)
        assert actor.close_code is None


async def test_after_a_release_new_live_frames_still_count_against_the_outbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Released frames do not count, but a client that stops reading is still closed."""
    env = make_env(EdgeSettings(heartbeat_s=10, outbox_size=4, resume_grace_s=0.2))
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]) as (actor,):
        await socket.frame()
        socket.writable = trio.Event()  # the client stops reading
        for n in range(1, 11):
            env.registry.fan_out(deliver(n))
        await trio.sleep(1)  # the hold ends: all 10 are queued (one in the stuck write)
        assert len(actor.outbox) == 9
        assert actor.close_code is None
        (handle,) = env.registry.sessions_of("t", "u")
        # Backlogged: the delivery consumer waits for the writer, which is stuck.
        assert handle.deliver(deliver(11)) is True
        for n in range(12, 15):
            handle.deliver(deliver(n))
        assert actor.close_code is None  # four new ones fill the outbox (size 4)
        handle.deliver(deliver(15))
        assert actor.close_code == 1013
        socket.writable.set()


async def test_frames_other_than_resume_do_not_end_the_opening_hold() -> None:
    """Defect 2: a subscribe before the resume released live frames ahead of the replay."""
    store = FakeStore(notifications=[notification(n) for n in range(1, 6)])
    env = make_env(EdgeSettings(heartbeat_s=10, outbox_size=64, resume_grace_s=5), store)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]) as (actor,):
        await socket.frame()
        env.registry.fan_out(deliver(7))
        env.registry.fan_out(deliver(8, channel="news"))
        await socket.say({"type": "subscribe", "channels": ["alerts"]})
        assert await socket.frame() == {"type": "subscribed", "channels": ["alerts"]}
        await socket.say({"type": "ping"})
        assert await socket.frame() == {"type": "pong"}
        await socket.say({"type": "ack", "id": nid(1)})
        await nothing_queued(socket)  # the live one is still held
        assert actor.resumption.opening
        await socket.say({"type": "resume", "since": FROM_THE_START})
        frames = await frames_until(socket, "resumed")
        assert ids(frames) == [nid(n) for n in range(1, 6)]
        assert frames[-1] == {"type": "resumed", "count": 5}
        # Then the held one; the one on a channel the client did not subscribe to is not sent.
        assert (await socket.frame())["id"] == nid(7)
        await nothing_queued(socket)


async def test_a_failed_replay_closes_1011_instead_of_going_live() -> None:
    """Defect 3: after resume_failed the session went live and skipped the backlog."""
    store = PagedStore(notifications=[notification(n) for n in range(1, 11)])
    settings = EdgeSettings(heartbeat_s=10, outbox_size=64, replay_page=3, resume_lookback_s=0)
    env = make_env(settings, store)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]) as (actor,):
        await socket.frame()
        await socket.say({"type": "resume", "since": FROM_THE_START})
        first_page = [(await socket.frame())["id"] for _ in range(3)]
        assert first_page == [nid(1), nid(2), nid(3)]
        env.registry.fan_out(deliver(12))  # held during the replay
        store.failure = StoreError("cassandra: ReadTimeout")
        store.later.set()
        error = await socket.frame()
        assert (error["type"], error["code"]) == ("error", "resume_failed")
        with trio.fail_after(5):
            await socket.closed.wait()
        assert socket.closed_with == (1011, "resume failed")
        assert actor.close_code == 1011
        env.registry.fan_out(deliver(13))
        await nothing_queued(socket)  # neither the held one nor later ones


async def test_a_session_that_crashes_is_closed_1011_not_1000() -> None:
    """Defect 4: a crash closed the session with 1000, as if all was well."""
    store = PagedStore(
        notifications=[notification(n) for n in range(1, 11)], failure=RuntimeError("bug")
    )
    store.later.set()
    env = make_env(EdgeSettings(heartbeat_s=10, outbox_size=64, replay_page=3), store)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        await socket.frame()
        await socket.say({"type": "resume", "since": FROM_THE_START})
        with trio.fail_after(5):
            await socket.closed.wait()
        assert socket.closed_with == (1011, "internal error")


async def test_a_live_copy_of_an_id_replayed_before_the_window_forgot_it_is_not_sent() -> None:
    """Defect 5: a replay longer than sent_window doubled a redelivered id after ``resumed``."""
    store = PagedStore(notifications=[notification(n) for n in range(1, 11)])
    settings = EdgeSettings(
        heartbeat_s=10, outbox_size=64, replay_page=3, sent_window=4, resume_lookback_s=0
    )
    env = make_env(settings, store)
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]):
        await socket.frame()
        await socket.say({"type": "resume", "since": cursor_for(notification(0))})
        assert (await socket.frame())["id"] == nid(1)
        # A redelivery of the first replayed id, and a new one, while the replay runs.
        env.registry.fan_out(deliver(1))
        env.registry.fan_out(deliver(11))
        store.later.set()
        frames = await frames_until(socket, "resumed")
        assert ids(frames) == [nid(n) for n in range(2, 11)]
        assert frames[-1] == {"type": "resumed", "count": 10}
        assert (await socket.frame())["id"] == nid(11)
        await nothing_queued(socket)
