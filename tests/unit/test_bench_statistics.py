"""The observability bench's arithmetic: mode order, overhead ratios and their spread."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.observability_bench import (
    GOAL_OVERHEAD,
    MODES,
    SATURATED_CORES,
    bootstrap_interval,
    cycle_statistics,
    fan_out_valid,
    goal_verdict,
    mode_cycles,
    overhead,
    saturated_rounds,
)

values = st.lists(st.floats(min_value=0.1, max_value=1e4), min_size=1, max_size=16)


@given(st.integers(min_value=1, max_value=12))
def test_every_cycle_runs_every_mode_once(cycles: int) -> None:
    orders = mode_cycles(cycles)
    assert len(orders) == cycles
    for order in orders:
        assert sorted(order) == sorted(MODES)


def test_over_as_many_cycles_as_modes_each_mode_takes_each_position_once() -> None:
    positions = Counter(
        (mode, index) for order in mode_cycles(len(MODES)) for index, mode in enumerate(order)
    )
    assert set(positions.values()) == {1}
    assert len(positions) == len(MODES) ** 2


def test_overhead_reads_a_rate_and_a_cost_the_right_way_round() -> None:
    # A rate (POSTs a second) that falls from 100 to 80 is a 25 % overhead.
    assert overhead([100.0], [80.0], higher_is_better=True) == pytest.approx(0.25)
    # A cost (CPU cores) that rises from 0.5 to 0.6 is a 20 % overhead.
    assert overhead([0.5], [0.6], higher_is_better=False) == pytest.approx(0.2)
    # Medians, not means: one outlier round does not move it.
    assert overhead([1.0, 1.0, 9.0], [1.1, 1.1, 1.1], higher_is_better=False) == pytest.approx(0.1)


@given(values, st.floats(min_value=0.5, max_value=2.0), st.booleans())
def test_a_uniform_change_is_seen_exactly_in_every_view(
    off: list[float], factor: float, higher_is_better: bool
) -> None:
    on = [v * factor for v in off]
    expected = 1 / factor - 1 if higher_is_better else factor - 1
    rounds = {mode: [{"x": v} for v in (off if mode == "off" else on)] for mode in MODES}
    views = cycle_statistics(rounds, "x", higher_is_better=higher_is_better)
    for mode in MODES[1:]:
        view = views[mode]
        assert view["overhead_ratio"] == pytest.approx(expected, abs=1e-4)
        assert view["median_of_cycle_ratios"] == pytest.approx(expected, abs=1e-4)
        low, high = view["interval_90"]
        assert low == pytest.approx(expected, abs=1e-4)
        assert high == pytest.approx(expected, abs=1e-4)


@given(st.data(), values, st.booleans())
def test_the_interval_is_ordered_repeatable_and_within_what_the_rounds_allow(
    data: st.DataObject, off: list[float], higher_is_better: bool
) -> None:
    on = data.draw(st.lists(st.floats(min_value=0.1, max_value=1e4), min_size=len(off),
                            max_size=len(off)))  # fmt: skip
    low, high = bootstrap_interval(off, on, higher_is_better, draws=200)
    assert low <= high
    assert (low, high) == bootstrap_interval(off, on, higher_is_better, draws=200)
    extremes = [
        overhead([a], [b], higher_is_better)
        for a in (min(off), max(off))
        for b in (min(on), max(on))
    ]
    assert min(extremes) - 1e-9 <= low
    assert high <= max(extremes) + 1e-9


def test_a_wide_scatter_gives_a_wide_interval() -> None:
    off = [1.0] * 12
    steady = [1.05] * 12
    scattered = [0.85, 1.25, 0.9, 1.2, 0.95, 1.15, 0.85, 1.25, 0.9, 1.2, 0.95, 1.15]
    steady_low, steady_high = bootstrap_interval(off, steady, False)
    low, high = bootstrap_interval(off, scattered, False)
    assert steady_high - steady_low == pytest.approx(0.0)
    assert high - low > 0.1


def test_a_round_at_the_saturation_line_is_counted_per_mode() -> None:
    rounds = {
        "off": [{"serve_cpu_cores": 0.6}, {"serve_cpu_cores": SATURATED_CORES}],
        "on": [{"serve_cpu_cores": 0.7}, {"serve_cpu_cores": 0.96}],
        "metrics_only": [{"serve_cpu_cores": 0.61}, {"serve_cpu_cores": 0.62}],
    }
    assert saturated_rounds(rounds) == {"off": 1, "on": 1, "metrics_only": 0}


@given(st.floats(min_value=-1.0, max_value=1.0))
def test_a_void_comparison_neither_meets_nor_misses_the_goal(value: float) -> None:
    assert goal_verdict(value, valid=False) is None
    assert goal_verdict(value, valid=True) is (value <= GOAL_OVERHEAD)


def _cpu_rounds(cores: dict[str, list[float]]) -> dict[str, list[dict[str, Any]]]:
    return {mode: [{"serve_cpu_cores": c} for c in values] for mode, values in cores.items()}


def test_a_few_saturated_rounds_leave_the_comparison_standing() -> None:
    # A hiccup: one round of eight over the line reads above the median anyway.
    cores = {"off": [0.70] * 7 + [0.95], "on": [0.75] * 8}
    assert fan_out_valid(_cpu_rounds(cores))


def test_half_the_rounds_saturated_voids_the_comparison() -> None:
    # The median of eight is then half a saturated round.
    cores = {"off": [0.70] * 8, "on": [0.80] * 4 + [0.90] * 4}
    assert not fan_out_valid(_cpu_rounds(cores))


@given(
    st.lists(st.floats(min_value=0.1, max_value=SATURATED_CORES * 0.99), min_size=1, max_size=12),
    st.data(),
)
def test_a_run_let_through_has_the_medians_it_would_have_had_uncapped(
    kept_up: list[float], data: st.DataObject
) -> None:
    """Whatever its saturated rounds would have cost uncapped, a valid run's medians are the same;
    and a run whose medians could move is not let through."""
    saturated = data.draw(st.integers(min_value=0, max_value=len(kept_up) + 2))
    capped = kept_up + [SATURATED_CORES] * saturated
    uncapped = kept_up + [
        data.draw(st.floats(min_value=SATURATED_CORES, max_value=4.0)) for _ in range(saturated)
    ]
    valid = fan_out_valid({"off": [{"serve_cpu_cores": c} for c in capped]})
    if valid:
        assert statistics.median(capped) == statistics.median(uncapped)
    assert valid == (saturated < len(kept_up))
