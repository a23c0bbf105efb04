"""An actor with its own receive loop: batching with a flush deadline."""

from __future__ import annotations

import math

import attrs
import trio
import trio.testing

from notifactor.actors import Actor, ActorRef, Inbox
from notifactor.supervisors import Supervisor, actor_spec


@attrs.frozen(kw_only=True)
class Item:
    value: int


class Batcher(Actor[Item]):
    """Flushes every 3 items or 1 s after the first buffered one; flushes on stop."""

    def __init__(self, flushed: list[tuple[float, list[int]]]) -> None:
        self.flushed = flushed
        self.buffer: list[int] = []
        self.deadline = math.inf

    def flush(self) -> None:
        if self.buffer:
            self.flushed.append((trio.current_time(), self.buffer))
        self.buffer, self.deadline = [], math.inf

    async def run(self, inbox: Inbox[Item]) -> None:
        while True:
            with trio.move_on_at(self.deadline):
                try:
                    item = await inbox.receive()
                except trio.EndOfChannel:  # graceful stop requested
                    return
                self.buffer.append(item.value)
                if len(self.buffer) == 1:
                    self.deadline = trio.current_time() + 1.0
                if len(self.buffer) < 3:
                    continue
            self.flush()

    async def handle(self, message: Item) -> None:
        raise AssertionError("run() is overridden")

    async def on_stop(self) -> None:
        self.flush()


async def test_batches_by_size_by_age_and_on_stop(autojump_clock: trio.testing.MockClock) -> None:
    flushed: list[tuple[float, list[int]]] = []
    ref = ActorRef[Item]("batcher", mailbox_size=16)
    sup = Supervisor("sup", [actor_spec(ref, lambda: Batcher(flushed))])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        began = trio.current_time()
        for value in range(4):
            await ref.tell(Item(value=value))
        await trio.sleep(5.0)
        await ref.tell(Item(value=4))
        sup.request_stop()
    assert flushed == [
        (began, [0, 1, 2]),  # full batch
        (began + 1.0, [3]),  # aged out
        (began + 5.0, [4]),  # flushed by the graceful stop
    ]
