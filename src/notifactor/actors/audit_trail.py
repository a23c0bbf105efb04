"""The gateway's audit trail: notes taken per request, summarised, written in batches.

The request path calls :meth:`AuditTrail.note`, which never waits: it puts an
:class:`~notifactor.domain.audit_summary.AuditNote` into the summarizer's
bounded mailbox, or counts it in ``audit_notes_dropped_total`` (and logs a
warning, at most every ``DROP_WARNING_INTERVAL_S``) when the mailbox is full.

The :class:`AuditSummarizer` actor sleeps while no note is queued. The first
note of a window wakes it; it then sleeps to the end of the window (notes
queue without waking it), takes everything queued, folds it with
:func:`~notifactor.domain.audit_summary.summarize` and writes the events
through the storage writer, which batches them with everything else it
writes. It waits until they are durable; events the writer gives up on are
counted in ``audit_events_failed_total`` and logged. On a graceful stop it
writes what is still queued before it returns.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Final

import trio
from prometheus_client import Counter

from notifactor.actors.actor import Actor, run_actor
from notifactor.actors.errors import ActorCrashed, ActorStopped, MailboxFull
from notifactor.actors.mailbox import Inbox
from notifactor.actors.ref import ActorRef
from notifactor.actors.stop import StopSignal, set_stop_signal
from notifactor.actors.storage_writer import StorageWriterClient
from notifactor.config import AuditConfig
from notifactor.domain.audit_summary import AuditNote, summarize
from notifactor.observability.metrics import (
    AUDIT_EVENTS_FAILED,
    AUDIT_EVENTS_WRITTEN,
    AUDIT_NOTES,
    AUDIT_NOTES_DROPPED,
)
from notifactor.ports.notification_store import StoreError

log = logging.getLogger("notifactor.audit")

DROP_WARNING_INTERVAL_S: Final = 10.0


@functools.cache
def _noted(event_type: str) -> Counter:
    """The ``audit_notes_total`` child of one event type (two exist)."""
    return AUDIT_NOTES.labels(event_type=event_type)


class AuditTrail:
    """The caller's side: note a request without ever waiting."""

    __slots__ = ("_last_warning", "_ref")

    def __init__(self, ref: ActorRef[AuditNote]) -> None:
        self._ref = ref
        self._last_warning = float("-inf")

    def note(self, note: AuditNote) -> None:
        """Queue ``note`` for the summarizer, or count it as dropped."""
        try:
            self._ref.tell_nowait(note)
        except (MailboxFull, ActorStopped) as error:
            AUDIT_NOTES_DROPPED.inc()
            now = time.monotonic()
            if now - self._last_warning >= DROP_WARNING_INTERVAL_S:
                self._last_warning = now
                log.warning(
                    "audit note dropped: %s",
                    type(error).__name__,
                    extra={"event": "audit_dropped", "tenant_id": note.tenant_id},
                )
            return
        _noted(note.event_type).inc()


class AuditSummarizer(Actor[AuditNote]):
    """Folds each window's notes into audit events and submits them to the writer.

    Args:
        writer: the process's storage writer.
        window_s: how long notes gather before they are summarised.
        max_ids: most notification ids in one event.
        drain_limit: most notes taken in one pass (the mailbox size is a good value).
    """

    def __init__(
        self, writer: StorageWriterClient, *, window_s: float, max_ids: int, drain_limit: int
    ) -> None:
        self._writer = writer
        self._window_s = window_s
        self._max_ids = max_ids
        self._drain_limit = drain_limit

    async def handle(self, message: AuditNote) -> None:
        raise NotImplementedError("AuditSummarizer overrides run()")  # pragma: no cover

    async def run(self, inbox: Inbox[AuditNote]) -> None:
        while True:
            try:
                first = await inbox.receive()
            except trio.EndOfChannel:
                # Graceful stop: what is still queued is written before returning.
                while queued := inbox.drain_nowait(self._drain_limit):
                    await self._write(queued)
                return
            await inbox.wait_until(trio.current_time() + self._window_s)
            await self._write([first, *inbox.drain_nowait(self._drain_limit)])

    async def _write(self, notes: list[AuditNote]) -> None:
        if not notes:
            return
        events = summarize(notes, max_ids=self._max_ids, new_id=lambda: str(uuid.uuid4()))
        try:
            # Waiting keeps at most one window in the writer; notes queue meanwhile.
            await self._writer.write(events)
        except (StoreError, ActorCrashed, ActorStopped) as error:
            AUDIT_EVENTS_FAILED.inc(len(events))
            log.error(
                "could not store %d audit events: %s",
                len(events),
                error,
                extra={"event": "audit_write_failed", "reason": type(error).__name__},
            )
            return
        AUDIT_EVENTS_WRITTEN.inc(len(events))


@asynccontextmanager
async def running_audit_trail(
    writer: StorageWriterClient, config: AuditConfig
) -> AsyncIterator[AuditTrail]:
    """An audit trail whose summarizer runs until the block exits (outside a supervision tree).

    ``notifactor serve`` and ``notifactor gateway`` supervise the summarizer
    instead; this is for embedding a gateway elsewhere (tests, benches). On
    exit the summarizer is stopped gracefully, so queued notes are submitted.
    """
    ref: ActorRef[AuditNote] = ActorRef("audit", mailbox_size=config.mailbox_size)
    stop = StopSignal()

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        set_stop_signal(stop)
        await run_actor(ref, partial(summarizer_for, writer, config), task_status=task_status)

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run)
            try:
                yield AuditTrail(ref)
            finally:
                stop.request()
    finally:
        ref.close()  # later notes are counted as dropped


def summarizer_for(writer: StorageWriterClient, config: AuditConfig) -> AuditSummarizer:
    """The summarizer ``[audit]`` describes, writing through ``writer``."""
    return AuditSummarizer(
        writer,
        window_s=config.window_s,
        max_ids=config.max_ids_per_event,
        drain_limit=config.mailbox_size,
    )
