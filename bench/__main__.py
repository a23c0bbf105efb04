"""Run bench scenarios one after the other: ``python -m bench [name ...]``.

Without names it runs the quick ones (ingest, dispatch, storage, actors; a few
minutes). ``fanout`` and ``observability`` take longer and load the machine
with thousands of sessions: name them to run them. Each scenario writes its
own ``bench/results/<name>.json``.
"""

from __future__ import annotations

import subprocess
import sys

SCENARIOS = {
    "ingest": "bench.ingest_bench",
    "dispatch": "bench.dispatch_bench",
    "storage": "bench.storage_bench",
    "actors": "bench.actors_bench",
    "fanout": "bench.fanout_bench",
    "observability": "bench.observability_bench",
}
QUICK = ("ingest", "dispatch", "storage", "actors")


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        return 2
    for name in names or QUICK:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", SCENARIOS[name]], check=False).returncode:
            print(f"== {name} failed")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
