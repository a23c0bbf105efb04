"""How long the delivery consumer waits for one session's writer (``make_room``).

The consumer is shared by every session of a gateway: whatever it waits for
one session, every other user waits too. These tests drive the session
actor with a fake socket on Trio's autojump clock and play the consumer's
part: fan a burst out, and ``make_room`` for each session it left backlogged.
"""

from __future__ import annotations

import attrs
import trio
import trio.lowlevel
import trio.testing

from notifactor.edge.settings import EdgeSettings
from tests.actors.test_session_actor import FakeRecorder, FakeSocket, deliver, make_env, sessions

SETTINGS = EdgeSettings(heartbeat_s=600, outbox_size=8, close_timeout_s=1, resume_grace_s=0.01)


class TrickleSocket(FakeSocket):
    """A client that reads, but one frame every ``per_frame_s``."""

    def __init__(self, per_frame_s: float) -> None:
        super().__init__()
        self.per_frame_s = per_frame_s

    async def send(self, text: str) -> None:
        await trio.sleep(self.per_frame_s)
        await super().send(text)


class CheckpointingRecorder(FakeRecorder):
    """Records like the real recorder: through a channel send, a checkpoint."""

    async def record(self, update: object) -> None:
        await trio.lowlevel.checkpoint()
        await super().record(update)  # type: ignore[arg-type]


async def _burst(env_registry: object, count: int, *, first: int = 0) -> None:
    from notifactor.edge.registry import SessionRegistry

    assert isinstance(env_registry, SessionRegistry)
    for n in range(first, first + count):
        for handle in env_registry.fan_out(deliver(n)).backlogged:
            await handle.make_room()


async def test_a_client_reading_slower_than_a_burst_stops_holding_up_the_consumer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """400 frames to a client reading 20 a second: waiting for it would hold every
    other session for 20 s. The consumer waits ``pace_budget_s`` at most, the
    client fills its outbox and is closed with 1013 (slow consumer)."""
    env = make_env(SETTINGS)
    socket = TrickleSocket(per_frame_s=0.05)
    async with sessions(env, [("t", "u", socket)]) as (actor,):
        await socket.frame()  # welcome
        await trio.sleep(0.1)  # past the opening hold
        started = trio.current_time()
        with trio.fail_after(60):
            await _burst(env.registry, 400)
        took = trio.current_time() - started
        with trio.fail_after(5):
            await socket.closed.wait()
    assert took <= SETTINGS.pace_budget_s + 0.5
    assert socket.closed_with is not None
    assert socket.closed_with[0] == 1013
    assert actor.close_code == 1013


async def test_a_client_that_keeps_up_is_paced_through_a_burst_bigger_than_its_outbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A client that empties its outbox now and then is waited for across bursts
    (the budget starts again each time the outbox empties) and gets everything."""
    env = make_env(SETTINGS)
    socket = TrickleSocket(per_frame_s=0.001)
    async with sessions(env, [("t", "u", socket)]) as (actor,):
        await socket.frame()
        await trio.sleep(0.1)
        for burst in range(5):
            await _burst(env.registry, 200, first=burst * 200)
            await trio.sleep(1)  # between bursts the client catches up
        assert actor.close_code is None
        frames = [await socket.frame() for _ in range(1000)]
    assert [f["id"] for f in frames] == [f"id{n:04d}" for n in range(1000)]


async def test_make_room_returns_when_the_session_ends_quietly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The client leaves while its outbox is half full and its writer is between
    writes: nobody will take those frames, and the consumer must not wait on."""
    env = make_env(SETTINGS)
    env.context = attrs.evolve(env.context, recorder=CheckpointingRecorder())
    socket = FakeSocket()
    async with sessions(env, [("t", "u", socket)]) as (actor,):
        await socket.frame()
        await trio.sleep(0.1)
        socket.writable = trio.Event()  # the next write blocks
        for n in range(6):
            env.registry.fan_out(deliver(n))
        await trio.sleep(0.05)
        assert actor.outbox.backlogged
        returned = trio.Event()

        async def consumer() -> None:
            await actor.make_room()
            returned.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            await trio.sleep(0.1)
            socket.leave()  # the client leaves
            await trio.lowlevel.checkpoint()
            socket.writable.set()  # the write in flight completes
            with trio.move_on_after(30):
                await returned.wait()
            nursery.cancel_scope.cancel()
        assert returned.is_set()
