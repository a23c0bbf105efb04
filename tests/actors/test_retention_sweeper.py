"""The retention sweeper: sweeps at start and at every interval, survives a failed sweep."""

from __future__ import annotations

from datetime import datetime

import trio
import trio.testing

from notifactor.actors.retention_sweeper import run_retention_sweeper
from notifactor.ports.notification_store import TransientStoreError


class SweptStore:
    def __init__(self, failures: int = 0) -> None:
        self.sweeps: list[float] = []
        self.failures = failures

    async def purge_expired(self, now: datetime | None = None) -> int:
        self.sweeps.append(trio.current_time())
        if self.failures:
            self.failures -= 1
            raise TransientStoreError("database is locked")
        return 3


async def test_sweeps_at_start_and_every_interval(autojump_clock: trio.testing.MockClock) -> None:
    store = SweptStore()
    start = trio.current_time()
    with trio.move_on_after(25):
        await run_retention_sweeper(store, 10.0)  # type: ignore[arg-type]
    assert [round(t - start) for t in store.sweeps] == [0, 10, 20]


async def test_a_failed_sweep_is_retried_at_the_next_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = SweptStore(failures=1)
    with trio.move_on_after(15):
        await run_retention_sweeper(store, 10.0)  # type: ignore[arg-type]
    assert len(store.sweeps) == 2


async def test_a_stop_request_ends_it(autojump_clock: trio.testing.MockClock) -> None:
    from notifactor.actors import StopSignal
    from notifactor.actors.stop import set_stop_signal

    stop = StopSignal()
    set_stop_signal(stop)
    store = SweptStore()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_retention_sweeper, store, 10.0)
        await trio.sleep(1)
        stop.request()
    assert trio.current_time() < 2
