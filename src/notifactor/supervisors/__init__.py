"""Supervision trees on Trio, in the spirit of Erlang/OTP supervisors.

Public API::

    sup = Supervisor("writers", [actor_spec(writer_ref, StorageWriter)],
                     strategy="one_for_one", intensity=3, period_s=5.0)
    pool = DynamicSupervisor("sessions", max_children=10_000)
    root = Supervisor("root", [sup.child_spec(), pool.child_spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await pool.start_child(actor_spec(session_ref, SessionActor, restart="temporary"))
        print(render_tree(root.statistics()))

Or from configuration: ``supervisor_from_config("writers", config.writers, specs)``.
See ``docs/supervision.md`` for the rules.
"""

from notifactor.actors.crash import CrashReason
from notifactor.actors.stop import StopSignal, current_stop_signal
from notifactor.domain.backoff import BackoffPolicy
from notifactor.supervisors.builder import (
    backoff_from_config,
    dynamic_supervisor_from_config,
    supervisor_from_config,
)
from notifactor.supervisors.child_spec import ChildSpec, Shutdown, StartFunction, actor_spec
from notifactor.supervisors.config import (
    BaseSubtreeConfig,
    DynamicSubtreeConfig,
    SubtreeConfig,
    SupervisionConfig,
)
from notifactor.supervisors.dynamic import DynamicSupervisor
from notifactor.supervisors.errors import (
    ChildStartFailed,
    DuplicateChild,
    PoolFull,
    SupervisorError,
    SupervisorGaveUp,
    SupervisorNotRunning,
)
from notifactor.supervisors.statistics import NodeStatistics, render_tree, to_jsonable
from notifactor.supervisors.strategies import RestartType, Strategy
from notifactor.supervisors.supervisor import Supervisor

__all__ = [
    "BackoffPolicy",
    "BaseSubtreeConfig",
    "ChildSpec",
    "ChildStartFailed",
    "CrashReason",
    "DuplicateChild",
    "DynamicSubtreeConfig",
    "DynamicSupervisor",
    "NodeStatistics",
    "PoolFull",
    "RestartType",
    "Shutdown",
    "StartFunction",
    "StopSignal",
    "Strategy",
    "SubtreeConfig",
    "SupervisionConfig",
    "Supervisor",
    "SupervisorError",
    "SupervisorGaveUp",
    "SupervisorNotRunning",
    "actor_spec",
    "backoff_from_config",
    "current_stop_signal",
    "dynamic_supervisor_from_config",
    "render_tree",
    "supervisor_from_config",
    "to_jsonable",
]
