"""Counting the tasks of a Trio run: what an idle session, or a dropped connection, leaves."""

from __future__ import annotations

import trio


def tasks_running() -> int:
    """Every task of this Trio run, from the root down."""

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            count(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    return count(trio.lowlevel.current_root_task())
