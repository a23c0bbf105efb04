"""The restart-intensity rule, against a model that is a plain list of times."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from notifactor.domain.restart_intensity import RestartIntensity


def test_one_more_restart_than_intensity_within_the_period_is_exceeded() -> None:
    window = RestartIntensity(intensity=2, period_s=5.0)
    window = window.record(0.0).record(1.0)
    assert not window.exceeded
    assert window.record(4.9).exceeded
    assert not window.record(5.0).exceeded  # the restart at 0.0 has left the window


def test_zero_intensity_gives_up_on_the_first_restart() -> None:
    assert RestartIntensity(intensity=0, period_s=1.0).record(0.0).exceeded


@given(
    intensity=st.integers(0, 5),
    period=st.floats(0.1, 100.0),
    gaps=st.lists(st.floats(0.0, 50.0), max_size=30),
)
def test_memory_stays_bounded(intensity: int, period: float, gaps: list[float]) -> None:
    window, now = RestartIntensity(intensity=intensity, period_s=period), 0.0
    for gap in gaps:
        now += gap
        window = window.record(now)
        assert len(window.restarts) <= intensity + 2


class RestartIntensityMachine(RuleBasedStateMachine):
    """Every step compares the rule with "count the times in the window"."""

    @initialize(intensity=st.integers(0, 6), period=st.floats(0.5, 30.0))
    def setup(self, intensity: int, period: float) -> None:
        self.intensity, self.period = intensity, period
        self.window = RestartIntensity(intensity=intensity, period_s=period)
        self.model: list[float] = []
        self.now = 0.0

    @rule(gap=st.floats(0.0, 40.0))
    def time_passes(self, gap: float) -> None:
        self.now += gap

    @rule()
    def restart(self) -> None:
        self.window = self.window.record(self.now)
        self.model.append(self.now)
        in_window = [t for t in self.model if self.now - t < self.period]
        assert self.window.exceeded == (len(in_window) > self.intensity)

    @invariant()
    def count_matches_the_model(self) -> None:
        if hasattr(self, "window"):
            expected = len([t for t in self.model if self.now - t < self.period])
            assert self.window.count(self.now) == min(expected, self.intensity + 1)


TestRestartIntensityMachine = RestartIntensityMachine.TestCase
