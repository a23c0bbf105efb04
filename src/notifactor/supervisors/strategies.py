"""Restart strategies and restart types, as plain decisions.

These are the Erlang/OTP rules, kept apart from the runtime so that they read
as a table and can be tested without tasks:

- strategy (per supervisor) says *which* children restart when one crashes;
- restart type (per child) says *whether* a child that exited is restarted.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
"""``one_for_one``: only the crashed child. ``one_for_all``: every child.
``rest_for_one``: the crashed child and every child started after it."""

RestartType = Literal["permanent", "transient", "temporary"]
"""``permanent``: always restarted. ``transient``: restarted only after a
crash, not after a normal return. ``temporary``: never restarted."""

STRATEGIES: Final[tuple[Strategy, ...]] = get_args(Strategy)
RESTART_TYPES: Final[tuple[RestartType, ...]] = get_args(RestartType)


def parse_strategy(value: str) -> Strategy:
    """Check a configured strategy name.

    Raises:
        ValueError: not one of the three strategies.
    """
    for strategy in STRATEGIES:
        if value == strategy:
            return strategy
    raise ValueError(f"must be one of {', '.join(STRATEGIES)} (got {value!r})")


def parse_restart_type(value: str) -> RestartType:
    """Check a configured restart type name.

    Raises:
        ValueError: not one of the three restart types.
    """
    for restart in RESTART_TYPES:
        if value == restart:
            return restart
    raise ValueError(f"must be one of {', '.join(RESTART_TYPES)} (got {value!r})")


def should_restart(restart: RestartType, *, crashed: bool) -> bool:
    """Whether a child that exited (``crashed`` or returned) is restarted."""
    match restart:
        case "permanent":
            return True
        case "transient":
            return crashed
        case "temporary":
            return False


def affected_indices(strategy: Strategy, count: int, crashed: int) -> range:
    """Positions (in start order) of the children a crash at ``crashed`` restarts."""
    match strategy:
        case "one_for_one":
            return range(crashed, crashed + 1)
        case "one_for_all":
            return range(count)
        case "rest_for_one":
            return range(crashed, count)
