"""What ``[supervision]`` accepts: finite durations, settings that take effect,
and each subtree's own defaults for the keys a partial override leaves out."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.config.loader import load_config
from notifactor.dispatcher.runner import DispatcherDeps, build_dispatcher
from notifactor.errors import ConfigError
from notifactor.supervisors import SubtreeConfig

PREFIX = "NOTIFACTOR_SUPERVISION__"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"DISPATCHER__PERIOD_S": "inf"}, "supervision.dispatcher.period_s"),
        ({"DISPATCHER__SHUTDOWN_S": "inf"}, "supervision.dispatcher.shutdown_s"),
        (
            {"DISPATCHER__BACKOFF_MIN_S": "inf", "DISPATCHER__BACKOFF_MAX_S": "inf"},
            "supervision.dispatcher.backoff_m",
        ),
        ({"WRITERS__BACKOFF_MAX_S": "inf"}, "supervision.writers.backoff_max_s"),
        ({"SESSIONS__BACKOFF_RESET_S": "Infinity"}, "supervision.sessions.backoff_reset_s"),
        ({"ROOT__SHUTDOWN_S": "1e400"}, "supervision.root.shutdown_s"),
        ({"CONSUMERS__PERIOD_S": "-inf"}, "supervision.consumers.period_s"),
    ],
)
def test_durations_must_be_finite(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, {PREFIX + name: value for name, value in env.items()})
    assert str(raised.value).startswith(key)
    assert "finite" in raised.value.reason


@given(st.floats(min_value=1e-3, allow_infinity=False, allow_nan=False))
def test_any_finite_positive_duration_is_accepted(seconds: float) -> None:
    config = SubtreeConfig(period_s=seconds, shutdown_s=seconds, backoff_reset_s=seconds)
    assert config.period_s == seconds


@given(st.sampled_from([math.inf, -math.inf, math.nan]))
def test_no_non_finite_duration_is_accepted(seconds: float) -> None:
    for key in ("period_s", "shutdown_s", "backoff_reset_s", "backoff_min_s", "backoff_max_s"):
        with pytest.raises(ValueError):
            SubtreeConfig(**{key: seconds})  # type: ignore[arg-type]


def test_the_dispatcher_strategy_is_rest_for_one_and_other_values_are_refused() -> None:
    assert load_config(None, {}).supervision.dispatcher.strategy == "rest_for_one"
    explicit = load_config(None, {PREFIX + "DISPATCHER__STRATEGY": "rest_for_one"})
    assert explicit.supervision.dispatcher.strategy == "rest_for_one"
    for other in ("one_for_one", "one_for_all"):
        with pytest.raises(ConfigError) as raised:
            load_config(None, {PREFIX + "DISPATCHER__STRATEGY": other})
        assert raised.value.key == "supervision.dispatcher.strategy"
        assert "must be rest_for_one" in raised.value.reason
        assert repr(other) in raised.value.reason


def test_the_dispatcher_subtree_runs_the_configured_strategy() -> None:
    config = load_config(None, {PREFIX + "DISPATCHER__INTENSITY": "7"})
    deps = DispatcherDeps(
        bus=MagicMock(),
        presence=MagicMock(),
        writer=MagicMock(),
        policy_for=MagicMock(),
        partitions=2,
        consumer_name="x",
    )
    dispatcher = build_dispatcher(config, deps)
    assert dispatcher.strategy == config.supervision.dispatcher.strategy == "rest_for_one"


def test_sessions_are_temporary_and_other_restart_types_are_refused() -> None:
    assert load_config(None, {}).supervision.sessions.child_restart == "temporary"
    for other in ("transient", "permanent"):
        with pytest.raises(ConfigError) as raised:
            load_config(None, {PREFIX + "SESSIONS__CHILD_RESTART": other})
        assert raised.value.key == "supervision.sessions.child_restart"
        assert "must be temporary" in raised.value.reason


def test_overriding_some_keys_keeps_the_subtree_defaults_of_the_others() -> None:
    supervision = load_config(
        None,
        {
            PREFIX + "ROOT__INTENSITY": "5",
            PREFIX + "SESSIONS__MAX_CHILDREN": "50000",
            PREFIX + "CONSUMERS__BACKOFF_MAX_S": "5",
            PREFIX + "DISPATCHER__INTENSITY": "5",
        },
    ).supervision
    assert (supervision.root.strategy, supervision.root.period_s) == ("rest_for_one", 30.0)
    assert supervision.root.shutdown_s == 10.0
    assert supervision.root.intensity == 5
    assert supervision.sessions.child_restart == "temporary"
    assert supervision.sessions.mailbox_size == 256
    assert supervision.sessions.intensity == 100
    assert supervision.sessions.max_children == 50000
    assert supervision.consumers.child_restart == "permanent"
    assert supervision.consumers.max_children == 1024
    assert supervision.dispatcher.strategy == "rest_for_one"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({PREFIX + "DISPATCHER__STRATEGY": "one_for_all"}, "supervision.dispatcher.strategy"),
        ({PREFIX + "DISPATCHER__SHUTDOWN_S": "inf"}, "supervision.dispatcher.shutdown_s"),
        ({PREFIX + "SESSIONS__CHILD_RESTART": "transient"}, "supervision.sessions.child_restart"),
    ],
)
def test_refused_supervision_values_are_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], key: str
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "notifactor", "token", "--tenant", "t", "--sub", "u"],
        capture_output=True,
        text=True,
        env={**base, **env},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"notifactor: configuration error: {key}:")
    assert "Traceback" not in result.stderr + result.stdout
