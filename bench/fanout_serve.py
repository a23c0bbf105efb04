"""Bench-only wrapper around ``notifactor serve`` with measurement hooks.

The fan-out bench runs the server through this module instead of
``python -m notifactor serve`` so it can ask for things the product has no
reason to offer:

* ``SIGUSR1``: ``gc.collect()`` now (before an RSS reading of idle sessions);
  with ``FANOUT_GC_FREEZE=1`` also ``gc.freeze()`` (an experiment: what the
  full-collection pauses would be if the server froze its long-lived objects);
* ``SIGUSR2``: with ``FANOUT_TRACEMALLOC=<dir>``, write a tracemalloc snapshot
  ``<dir>/snap-<n>.pickle`` (diff two of them with ``bench.fanout_memory``);
  with ``FANOUT_PROFILE=<file>``, start cProfile on the first signal and stop
  it and write the stats on the second (the bench brackets the load phases).

``FANOUT_METRICS=off`` turns every metric update into a no-op (the "off"
side of :mod:`bench.observability_bench`).

Run: ``python -m bench.fanout_serve [serve|gateway]`` with the usual
``NOTIFACTOR_*`` variables.
"""

from __future__ import annotations

import cProfile
import gc
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType


def main() -> int:
    snapshots = os.environ.get("FANOUT_TRACEMALLOC")
    profile_to = os.environ.get("FANOUT_PROFILE")
    taken = 0

    freeze = os.environ.get("FANOUT_GC_FREEZE") == "1"

    def collect(_signum: int, _frame: FrameType | None) -> None:
        gc.collect()
        if freeze:
            gc.freeze()

    profiler = cProfile.Profile()
    profiling = False

    def snapshot(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken, profiling
        if profile_to is not None:
            if profiling:
                profiler.disable()
                profiler.dump_stats(profile_to)
            else:
                profiler.enable()
            profiling = not profiling
            return
        if snapshots is None:
            return
        gc.collect()
        taken += 1
        tracemalloc.take_snapshot().dump(str(Path(snapshots) / f"snap-{taken}.pickle"))

    if snapshots is not None:
        tracemalloc.start(8)
    gc_log = os.environ.get("FANOUT_GC_LOG")
    if gc_log is not None:
        log_gc_pauses(Path(gc_log))
    signal.signal(signal.SIGUSR1, collect)
    signal.signal(signal.SIGUSR2, snapshot)

    if os.environ.get("FANOUT_METRICS") == "off":
        from bench.observability_hooks import disable_metrics

        disable_metrics()
    from notifactor.cli import main as serve_main

    return serve_main([sys.argv[1] if len(sys.argv) > 1 else "serve"])


def log_gc_pauses(path: Path) -> None:
    started = [0.0]
    out = path.open("a", buffering=1)

    def callback(phase: str, info: dict[str, int]) -> None:
        if info["generation"] < 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pause_ms = (time.perf_counter() - started[0]) * 1000
            out.write(f"{time.time():.3f} {info['generation']} {pause_ms:.1f}\n")

    gc.callbacks.append(callback)


if __name__ == "__main__":
    sys.exit(main())
