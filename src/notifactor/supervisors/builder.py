"""Build supervisors from the ``[supervision]`` configuration.

Code decides *what* runs (the child specs); configuration decides *how* it is
supervised (strategy, intensity, backoff, budgets, pool size). This is the
one place where the two meet, so operators tune trees without code changes.
"""

from __future__ import annotations

import random as _random
from collections.abc import Sequence

from notifactor.domain.backoff import BackoffPolicy
from notifactor.supervisors.child_spec import ChildSpec
from notifactor.supervisors.config import BaseSubtreeConfig, DynamicSubtreeConfig, SubtreeConfig
from notifactor.supervisors.dynamic import DynamicSupervisor
from notifactor.supervisors.strategies import parse_restart_type, parse_strategy
from notifactor.supervisors.supervisor import Supervisor


def backoff_from_config(config: BaseSubtreeConfig) -> BackoffPolicy:
    """The backoff schedule a subtree's ``backoff_*`` keys describe."""
    return BackoffPolicy(
        min_s=config.backoff_min_s,
        max_s=config.backoff_max_s,
        jitter=config.backoff_jitter,
        reset_after_s=config.backoff_reset_s,
    )


def supervisor_from_config(
    id: str,
    config: SubtreeConfig,
    children: Sequence[ChildSpec],
    *,
    random: _random.Random | None = None,
) -> Supervisor:
    """A static supervisor for ``children`` (in start order), tuned by ``config``.

    ``config.shutdown_s`` is the budget of children whose spec sets none;
    ``config.mailbox_size`` is for the caller to size the actor refs it puts
    in ``children``.
    """
    return Supervisor(
        id,
        children,
        strategy=parse_strategy(config.strategy),
        intensity=config.intensity,
        period_s=config.period_s,
        backoff=backoff_from_config(config),
        shutdown_s=config.shutdown_s,
        random=random,
    )


def dynamic_supervisor_from_config(
    id: str,
    config: DynamicSubtreeConfig,
    *,
    random: _random.Random | None = None,
) -> DynamicSupervisor:
    """An empty pool tuned by ``config`` (capacity, default restart type, budgets)."""
    return DynamicSupervisor(
        id,
        max_children=config.max_children,
        intensity=config.intensity,
        period_s=config.period_s,
        backoff=backoff_from_config(config),
        shutdown_s=config.shutdown_s,
        default_restart=parse_restart_type(config.child_restart),
        random=random,
    )
