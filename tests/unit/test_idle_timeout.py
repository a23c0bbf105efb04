"""The keep-alive idle timeout: closes idle connections, never a busy one (autojump clock)."""

from __future__ import annotations

import attrs
import trio
import trio.testing

from notifactor.gateway.idle_timeout import IdleTimeout

TIMEOUT_S = 5.0


@attrs.define
class FakeServer:
    closed_at: float | None = None

    async def _initiate_server_close(self) -> None:
        self.closed_at = trio.current_time()


HYPERCORN_TASK_GROUP = object()  # passed by hypercorn, not used: the watcher has its own nursery


async def test_an_idle_connection_closes_after_the_timeout_and_requests_push_it_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server, terminated = FakeServer(), trio.Event()
    async with trio.open_nursery() as nursery:
        idle = IdleTimeout(server, terminated, TIMEOUT_S, nursery)
        start = trio.current_time()
        await idle.restart(HYPERCORN_TASK_GROUP, None)
        await trio.sleep(4)
        await idle.stop()  # a request arrives
        await trio.sleep(60)  # however long it takes, a busy connection stays
        assert server.closed_at is None
        await idle.restart(HYPERCORN_TASK_GROUP, None)  # answered: idle again
        await trio.sleep(4)
        await idle.restart(HYPERCORN_TASK_GROUP, None)  # another quick request
    assert server.closed_at == start + 4 + 60 + 4 + TIMEOUT_S


async def test_stopping_closes_idle_connections_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server, terminated = FakeServer(), trio.Event()
    async with trio.open_nursery() as nursery:
        idle = IdleTimeout(server, terminated, TIMEOUT_S, nursery)
        await idle.restart(HYPERCORN_TASK_GROUP, None)
        await trio.sleep(1)
        terminated.set()
        stopped = trio.current_time()
    assert server.closed_at == stopped


async def test_stopping_lets_a_busy_connection_answer_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server, terminated = FakeServer(), trio.Event()
    async with trio.open_nursery() as nursery:
        idle = IdleTimeout(server, terminated, TIMEOUT_S, nursery)
        await idle.restart(HYPERCORN_TASK_GROUP, None)
        await idle.stop()  # busy
        terminated.set()
        await trio.sleep(2)
        assert server.closed_at is None
        await idle.restart(HYPERCORN_TASK_GROUP, None)  # the response is out
        answered = trio.current_time()
    assert server.closed_at == answered


async def test_a_connection_that_ends_while_busy_is_not_held_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server, terminated = FakeServer(), trio.Event()
    with trio.fail_after(1):  # the caller cancels the watcher's nursery when run() returns
        async with trio.open_nursery() as nursery:
            idle = IdleTimeout(server, terminated, TIMEOUT_S, nursery)
            await idle.restart(HYPERCORN_TASK_GROUP, None)
            await idle.stop()  # busy, then the client goes away: no restart ever comes
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
    assert server.closed_at is None
