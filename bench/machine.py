"""Machine facts and per-process CPU accounting shared by the benches.

Every bench result carries the facts of the machine it ran on (the figures are
only comparable as ratios within one run: the machine is small and shared).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import psutil  # type: ignore[import-untyped]


def machine_facts() -> dict[str, Any]:
    """Python, CPU count and model, memory and the load average at the time of the run."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "shared": "the machine also runs other work: compare ratios within one run",
    }


class CpuMeter:
    """CPU seconds used by a set of processes over a wall-clock window.

    ``start()`` then ``stop()``; :meth:`percent` is CPU time / wall time * 100
    per process (100 = one full core). A process that exits meanwhile counts
    what was last sampled.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid > 0}
        self._before: dict[str, float] = {}
        self._after: dict[str, float] = {}
        self._wall = 0.0
        self._started = 0.0

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
            total = times.user + times.system
            for child in proc.children(recursive=True):
                with_child = child.cpu_times()
                total += with_child.user + with_child.system
            return float(total)
        except psutil.Error:
            return 0.0

    def start(self) -> None:
        self._before = {name: self._cpu(p) for name, p in self._procs.items()}
        self._after = dict(self._before)
        self._started = time.perf_counter()

    def sample(self) -> None:
        """Remember the latest figures (call while children may still exit and be reaped)."""
        for name, proc in self._procs.items():
            self._after[name] = max(self._after.get(name, 0.0), self._cpu(proc))

    def stop(self) -> None:
        self._wall = time.perf_counter() - self._started
        self.sample()

    def percent(self) -> dict[str, float]:
        if self._wall <= 0:
            return {}
        return {
            name: round(100 * max(0.0, self._after.get(name, 0.0) - before) / self._wall, 1)
            for name, before in self._before.items()
        }
