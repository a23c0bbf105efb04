"""The garbage collector of a long-running process, tuned by ``[runtime]``.

A gateway allocates a few thousand short-lived objects per request. With the
interpreter's default thresholds, young collections run every few requests
and full collections walk every module, schema and class object loaded at
start-up; both show in throughput and tail latency. Two measures, each
configurable:

* larger thresholds (:func:`tune_collector`, before the event loop starts);
* freezing what is alive once the supervision tree has started
  (:func:`freeze_start_up_objects`): those objects live as long as the
  process, so full collections stop walking them. Objects made later are
  collected as usual.

It also sets whether the Redis client checks each command at run time
(:func:`tune_redis_client`).
"""

from __future__ import annotations

import gc
import logging

import coredis

from notifactor.config import RuntimeConfig

log = logging.getLogger("notifactor.runtime")


def tune_collector(runtime: RuntimeConfig) -> None:
    """Apply the configured thresholds (``gc_gen0_threshold = 0`` keeps the interpreter's)."""
    if runtime.gc_gen0_threshold > 0:
        gc.set_threshold(
            runtime.gc_gen0_threshold, runtime.gc_gen1_threshold, runtime.gc_gen2_threshold
        )


def freeze_start_up_objects(runtime: RuntimeConfig) -> None:
    """Collect once, then move every surviving object to the permanent generation."""
    if not runtime.gc_freeze_after_start:
        return
    gc.collect()
    gc.freeze()
    log.info(
        "froze %d start-up objects out of the collector's sight",
        gc.get_freeze_count(),
        extra={"event": "gc_freeze"},
    )


def tune_redis_client(runtime: RuntimeConfig) -> None:
    """Switch coredis's per-command runtime checks on or off (``redis_client_checks``).

    Off is coredis's documented ``Config.optimized`` mode: a command the
    server does not know is then refused by the server instead of by the
    client, with the same kind of error.
    """
    coredis.Config.optimized = not runtime.redis_client_checks
