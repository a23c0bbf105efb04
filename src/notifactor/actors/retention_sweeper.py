"""Removes rows past their tenant's retention from stores that do not expire them.

Cassandra drops expired rows by itself (TTL); SQLite keeps them until they are
deleted, so ``serve`` on SQLite runs this worker. Reads never depend on it: it
only bounds how much disk old rows take.
"""

from __future__ import annotations

import logging

import trio

from notifactor.actors.stop import optional_stop_signal
from notifactor.ports.notification_store import NotificationStore, StoreError

logger = logging.getLogger("notifactor.retention")

DEFAULT_SWEEP_INTERVAL_S = 3600.0


async def run_retention_sweeper(
    store: NotificationStore,
    interval_s: float = DEFAULT_SWEEP_INTERVAL_S,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Purge expired rows now and then every ``interval_s`` until cancelled.

    A failed sweep is logged and tried again at the next interval: a busy
    database must not take the worker (and its siblings) down. A graceful
    stop from the supervisor ends it at once.
    """
    stop = optional_stop_signal()
    task_status.started()
    with trio.CancelScope() as scope:
        if stop is not None:
            stop.register(scope)
        while True:
            try:
                removed = await store.purge_expired()
            except StoreError as error:
                logger.warning("retention sweep failed, next in %.0fs: %s", interval_s, error)
            else:
                if removed:
                    logger.info("retention sweep removed %d expired rows", removed)
            await trio.sleep(interval_s)
