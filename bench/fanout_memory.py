"""Bench-only: what idle sessions cost, from two tracemalloc snapshots of the server.

``python -m bench.fanout_memory <dir> [sessions]`` compares ``snap-1.pickle``
(before connecting) with ``snap-2.pickle`` (sessions idle), both written by
``bench.fanout_serve`` on ``SIGUSR2``, and prints the biggest growth by
source line and by file, per session when ``sessions`` is given.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path


def main() -> None:
    where = Path(sys.argv[1])
    sessions = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    before = tracemalloc.Snapshot.load(str(where / "snap-1.pickle"))
    after = tracemalloc.Snapshot.load(str(where / "snap-2.pickle"))
    for key, top in (("filename", 25), ("lineno", 40)):
        diff = after.compare_to(before, key)
        total = sum(d.size_diff for d in diff)
        print(f"--- by {key}: total {total / 1024 / sessions:.2f} KiB per session")
        for stat in diff[:top]:
            frame = stat.traceback[0]
            name = frame.filename.split("site-packages/")[-1].split("/src/")[-1]
            print(
                f"{stat.size_diff / sessions:9.0f} B {stat.count_diff / sessions:7.2f} blocks"
                f"  {name}:{frame.lineno if key == 'lineno' else ''}"
            )


if __name__ == "__main__":
    main()
