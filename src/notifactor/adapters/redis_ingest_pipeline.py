"""Concurrent ingest calls sent together: one pipeline of ``EVALSHA`` per round trip.

Each POST makes one ingest call. Made one by one, a coredis call costs about
72 µs of CPU (its pool, its request object, its reply future and the task
switches around them); the same calls sent as one pipeline cost about 16 µs
each (docs/performance.md). :class:`PipelinedIngest` puts every call into a
bounded queue, and one sender task takes everything queued, up to
``max_calls``, and sends it as one non-transactional pipeline. Calls that
arrive while a pipeline is out wait for the next one, so under load the
pipelines fill up, and an idle gateway sends a lone call at once.

Nothing about a call changes: each is still its own ``EVALSHA`` of the ingest
script, atomic on the server, with its own reply, so rate limits,
idempotency and shedding behave exactly as with one call per round trip.
A ``NOSCRIPT`` reply (a restarted or flushed server) reloads the script and
repeats that call alone. A failed pipeline fails each of its calls with the
error; the sender goes on with the next.

Each call is bounded by ``IngestSettings.call_timeout_s``. Rather than a
cancel scope with a deadline per call (about a tenth of a POST's CPU), one
watchdog task answers the calls still waiting at their deadline with
:class:`~notifactor.ports.ingest.IngestTimedOut`, at most ``WATCH_TICK_S``
late. A call answered that way before the sender took it is not sent
afterwards; one the sender had taken may still land, as with any unavailable
answer. While the sender is not running (not started yet, or restarting
after a crash), calls fail at once with :class:`IngestSenderStopped`: no
call waits without the watchdog.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import coredis
import trio
from coredis.exceptions import NoScriptError

from notifactor.actors.stop import optional_stop_signal
from notifactor.adapters.redis_client import UNAVAILABLE
from notifactor.adapters.redis_ingest import (
    RedisIngest,
    parse_ingest_reply,
    timed_out,
    unavailable,
)
from notifactor.domain.envelope import Envelope
from notifactor.domain.rate_limit import RateRule
from notifactor.observability.metrics import INGEST_PIPELINE_CALLS
from notifactor.ports.ingest import IngestItem, IngestResult, IngestUnavailable

log = logging.getLogger("notifactor.gateway.ingest")


#: How often the watchdog looks for calls past their deadline.
WATCH_TICK_S = 0.05


class IngestSenderStopped(IngestUnavailable):
    """The pipeline sender stopped before this call was answered."""


class _Call:
    __slots__ = (
        "abandoned",
        "args",
        "deadline",
        "done",
        "error",
        "items",
        "keys",
        "now_us",
        "result",
        "rule",
        "tenant_id",
    )

    def __init__(
        self,
        tenant_id: str,
        rule: RateRule,
        items: Sequence[IngestItem],
        *,
        now_us: int | None,
        keys: list[str],
        args: list[str | int | bytes],
        deadline: float,
    ) -> None:
        self.tenant_id, self.rule, self.items, self.now_us = tenant_id, rule, items, now_us
        self.keys, self.args, self.deadline = keys, args, deadline
        self.done = trio.Event()
        self.result: IngestResult | None = None
        self.error: BaseException | None = None
        # The caller stopped waiting (a deadline, a client gone) before it was sent.
        self.abandoned = False

    def answer(self, result: IngestResult | None, error: BaseException | None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


class PipelinedIngest:
    """An :class:`~notifactor.ports.ingest.IngestBus` that pipelines concurrent calls.

    :meth:`run` is the sender; it must be running (a supervised child) for
    :meth:`ingest` to be answered.

    Args:
        client: the coredis client the pipelines go through.
        ingest: builds each call's keys and arguments and parses its reply.
        max_calls: most calls in one pipeline.
        queue_size: calls that may wait for the sender; beyond it callers
            wait for room (backpressure).
    """

    def __init__(
        self,
        client: coredis.Redis[Any],
        ingest: RedisIngest,
        *,
        max_calls: int = 128,
        queue_size: int = 4096,
    ) -> None:
        if max_calls < 1 or queue_size < 1:
            raise ValueError("max_calls and queue_size must be at least 1")
        self._client = client
        self._ingest = ingest
        self._max_calls = max_calls
        self._timeout_s = ingest.settings.call_timeout_s
        self._send, self._receive = trio.open_memory_channel[_Call](queue_size)
        # Queued calls in the order they were queued, hence of their deadlines.
        self._watched: deque[_Call] = deque()
        # Whether :meth:`run` is sending; no call waits for a sender that is not.
        self._running = False

    async def ingest(
        self,
        tenant_id: str,
        rule: RateRule,
        items: Sequence[IngestItem],
        *,
        now_us: int | None = None,
    ) -> IngestResult:
        if not self._running:  # not started yet, or restarting after a crash
            raise IngestSenderStopped("the ingest sender is not running; retry")
        keys, args = self._ingest.script_call(tenant_id, rule, items, now_us=now_us)
        deadline = trio.current_time() + self._timeout_s
        call = _Call(tenant_id, rule, items, now_us=now_us, keys=keys, args=args, deadline=deadline)
        try:
            if self._queued_at_once(call):
                await call.done.wait()  # the watchdog answers it at its deadline
            else:
                # The queue is full (Redis is behind): wait for room and for
                # the answer under the deadline here; this call is not watched.
                with trio.move_on_at(deadline):
                    await self._send.send(call)
                    await call.done.wait()
        finally:
            # Cancelled (the client went away, say) or timed out here: a call
            # not yet sent is dropped, so a retry does not make it twice.
            if not call.done.is_set():
                call.abandoned = True
        if not call.done.is_set():
            raise timed_out(self._timeout_s)
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _queued_at_once(self, call: _Call) -> bool:
        """Queue ``call`` without a task switch, watched for its deadline; False if full."""
        try:
            self._send.send_nowait(call)
        except trio.WouldBlock:
            return False
        self._watched.append(call)
        return True

    async def _watch_deadlines(self) -> None:
        """Answer each watched call still waiting at its deadline with :class:`IngestTimedOut`."""
        watched = self._watched
        while True:
            await trio.sleep(WATCH_TICK_S)
            now = trio.current_time()
            while watched and (watched[0].done.is_set() or watched[0].deadline <= now):
                call = watched.popleft()
                if not call.done.is_set():
                    call.abandoned = True  # not sent later, if it is still queued
                    call.answer(None, timed_out(self._timeout_s))

    async def get_accepted(self, tenant_id: str, notification_id: str) -> Envelope | None:
        return await self._ingest.get_accepted(tenant_id, notification_id)

    async def ping(self) -> None:
        await self._ingest.ping()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send queued calls, a pipeline at a time, until cancelled or asked to stop.

        The gateway stops its listeners first, so a graceful stop finds no
        call waiting; any that does is answered with :class:`IngestSenderStopped`.
        """
        stop = optional_stop_signal()
        batch: list[_Call] = []
        self._running = True
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_deadlines)
                with trio.CancelScope() as scope:
                    if stop is not None:
                        stop.register(scope)
                    while True:
                        batch = [await self._receive.receive()]
                        while len(batch) < self._max_calls:
                            try:
                                batch.append(self._receive.receive_nowait())
                            except trio.WouldBlock:
                                break
                        await self._send_pipeline(batch)
                        batch = []
                nursery.cancel_scope.cancel()  # stopped: no call is waiting any more
        finally:
            self._running = False  # later calls fail at once; these are answered now
            stopped = IngestSenderStopped("the ingest sender stopped; retry")
            for call in batch:
                call.answer(None, stopped)
            while True:
                try:
                    self._receive.receive_nowait().answer(None, stopped)
                except trio.WouldBlock:
                    break

    async def _send_pipeline(self, batch: list[_Call]) -> None:
        batch = [call for call in batch if not call.abandoned]
        if not batch:
            return
        INGEST_PIPELINE_CALLS.observe(len(batch))
        sha = self._ingest.script_sha
        try:
            async with self._client.pipeline(transaction=False, raise_on_error=False) as pipe:
                requests = [pipe.evalsha(sha, keys=c.keys, args=c.args) for c in batch]
        except UNAVAILABLE as error:
            refused = unavailable(error)
            for call in batch:
                call.answer(None, refused)
            return
        except Exception as error:
            for call in batch:
                call.answer(None, error)
            return
        reload: list[_Call] = []
        for call, request in zip(batch, requests, strict=True):
            try:
                call.answer(parse_ingest_reply(await request), None)
            except NoScriptError:
                reload.append(call)
            except UNAVAILABLE as error:
                call.answer(None, unavailable(error))
            except Exception as error:
                call.answer(None, error)
        if reload:
            try:
                await self._ingest.load_script()
            except Exception as error:  # the sender goes on; these calls fail
                failure = unavailable(error) if isinstance(error, UNAVAILABLE) else error
                for call in reload:
                    call.answer(None, failure)
                return
            for call in reload:
                if call.abandoned:
                    continue
                try:
                    result = await self._ingest.ingest(
                        call.tenant_id, call.rule, call.items, now_us=call.now_us
                    )
                except Exception as error:
                    call.answer(None, error)
                else:
                    call.answer(result, None)
