"""A controllable supervised worker for supervision tests.

Each incarnation logs ``("start", id)`` when its start function is entered,
``("ready", id)`` once it reported ready, and on the way out ``("stopped",
id)`` (graceful), ``("crashed", id)``, ``("returned", id)`` or ``("killed",
id)``. Tests drive it with ``crash(id)`` / ``finish(id)`` and wait for log
entries instead of sleeping.
"""

from __future__ import annotations

import attrs
import trio

from notifactor.actors.stop import current_stop_signal
from notifactor.supervisors import ChildSpec, RestartType, Shutdown


class Boom(Exception):
    """The failure a probe worker raises on command."""


@attrs.define
class Probe:
    log: list[tuple[str, str]] = attrs.Factory(list)
    times: list[float] = attrs.Factory(list)
    fail_before_ready: dict[str, int] = attrs.Factory(dict)
    _commands: dict[str, trio.MemorySendChannel[str]] = attrs.Factory(dict)
    _changed: trio.Event = attrs.Factory(trio.Event)

    def note(self, event: str, child_id: str) -> None:
        self.log.append((event, child_id))
        self.times.append(trio.current_time())
        self._changed.set()
        self._changed = trio.Event()

    def count(self, event: str, child_id: str) -> int:
        return self.log.count((event, child_id))

    def events(self, *kinds: str) -> list[tuple[str, str]]:
        return [entry for entry in self.log if entry[0] in kinds]

    def times_of(self, event: str, child_id: str) -> list[float]:
        return [
            t for entry, t in zip(self.log, self.times, strict=True) if entry == (event, child_id)
        ]

    async def wait_for(self, event: str, child_id: str, count: int = 1) -> None:
        while self.count(event, child_id) < count:
            await self._changed.wait()

    def crash(self, child_id: str) -> None:
        self._commands[child_id].send_nowait("crash")

    def finish(self, child_id: str) -> None:
        self._commands[child_id].send_nowait("return")

    def spec(
        self,
        child_id: str,
        *,
        restart: RestartType | None = None,
        shutdown: Shutdown | None = None,
        ignore_stop: bool = False,
    ) -> ChildSpec:
        async def start(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            self.note("start", child_id)
            if self.fail_before_ready.get(child_id, 0) > 0:
                self.fail_before_ready[child_id] -= 1
                self.note("crashed", child_id)
                raise Boom(f"{child_id} failed before ready")
            send, receive = trio.open_memory_channel[str](1)
            self._commands[child_id] = send
            task_status.started()
            self.note("ready", child_id)
            outcome = "killed"
            try:
                scope = trio.CancelScope()
                if not ignore_stop:
                    current_stop_signal().register(scope)
                with scope:
                    command = await receive.receive()
                    if command == "crash":
                        outcome = "crashed"
                        raise Boom(f"{child_id} crashed")
                    outcome = "returned"
                    return
                outcome = "stopped"
            finally:
                self.note(outcome, child_id)

        return ChildSpec(id=child_id, start=start, restart=restart, shutdown=shutdown)
