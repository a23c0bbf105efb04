"""``[runtime]``: the collector's thresholds and the start-up freeze, loaded and applied."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifactor.config import ConfigError, RuntimeConfig, load_config
from notifactor.runtime_tuning import freeze_start_up_objects, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    assert load_config(None, {}).runtime == RuntimeConfig()
    path = tmp_path / "n.toml"
    path.write_text("[runtime]\ngc_freeze_after_start = false\ngc_gen0_threshold = 9000\n")
    runtime = load_config(path, {"NOTIFACTOR_RUNTIME__GC_GEN2_THRESHOLD": "7"}).runtime
    assert runtime == RuntimeConfig(
        gc_freeze_after_start=False, gc_gen0_threshold=9000, gc_gen2_threshold=7
    )


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"NOTIFACTOR_RUNTIME__GC_GEN0_THRESHOLD": "-1"}, "runtime.gc_gen0_threshold"),
        ({"NOTIFACTOR_RUNTIME__GC_GEN1_THRESHOLD": "0"}, "runtime.gc_gen1_threshold"),
        ({"NOTIFACTOR_RUNTIME__GC_FREEZE_AFTER_START": "maybe"}, "runtime.gc_freeze_after_start"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env)
    assert key in str(info.value)


@pytest.mark.usefixtures("restored_collector")
def test_thresholds_are_applied_unless_zero() -> None:
    tune_collector(
        RuntimeConfig(gc_gen0_threshold=12_345, gc_gen1_threshold=3, gc_gen2_threshold=4)
    )
    assert gc.get_threshold() == (12_345, 3, 4)
    tune_collector(RuntimeConfig(gc_gen0_threshold=0))
    assert gc.get_threshold() == (12_345, 3, 4)


@pytest.mark.usefixtures("restored_collector")
def test_freeze_moves_live_objects_out_of_sight() -> None:
    gc.unfreeze()
    freeze_start_up_objects(RuntimeConfig(gc_freeze_after_start=False))
    assert gc.get_freeze_count() == 0
    kept = [[n] for n in range(1000)]
    freeze_start_up_objects(RuntimeConfig())
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_count()[2] == 0


def test_redis_client_checks_are_off_by_default_and_can_be_turned_on() -> None:
    import coredis

    from notifactor.runtime_tuning import tune_redis_client

    before = coredis.Config.optimized
    try:
        assert load_config(None, {}).runtime.redis_client_checks is False
        tune_redis_client(RuntimeConfig())
        assert coredis.Config.optimized
        checked = load_config(None, {"NOTIFACTOR_RUNTIME__REDIS_CLIENT_CHECKS": "true"}).runtime
        tune_redis_client(checked)
        assert not coredis.Config.optimized
    finally:
        coredis.Config.optimized = before
