"""``[storage_writer]``: loaded, validated, and turned into the writer's batching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notifactor.config import Config, ConfigError, StorageWriterSection, load_config
from notifactor.storage_setup import CASSANDRA_GROUP_ITEMS, storage_writer_for


class NoStore:
    """Never called: the writer is only built, not run."""


def batching(config: Config) -> Any:
    writer = storage_writer_for(config, NoStore())  # type: ignore[arg-type]
    return writer._config


def test_defaults_and_overrides(tmp_path: Path) -> None:
    assert load_config(None, {}).storage_writer == StorageWriterSection()
    path = tmp_path / "n.toml"
    path.write_text("[storage_writer]\nmax_items = 100\nmax_age_ms = 2.5\n")
    section = load_config(path, {"NOTIFACTOR_STORAGE_WRITER__MAX_GROUP_ITEMS": "10"}).storage_writer
    assert section == StorageWriterSection(max_items=100, max_age_ms=2.5, max_group_items=10)


@pytest.mark.parametrize(
    ("key", "value"),
    [("MAX_ITEMS", "0"), ("MAX_AGE_MS", "-1"), ("MAX_GROUP_ITEMS", "-2"), ("FLUSH_TIMEOUT_S", "x")],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {f"NOTIFACTOR_STORAGE_WRITER__{key}": value})
    assert f"storage_writer.{key.lower()}" in str(info.value)


def test_the_store_chooses_the_group_size_unless_configured() -> None:
    sqlite = batching(Config(storage_writer=StorageWriterSection(max_items=300, max_age_ms=4)))
    assert sqlite.batch.max_items == 300
    assert sqlite.batch.max_group_items == 300  # a whole flush per kind, one transaction
    assert sqlite.batch.max_age_s == pytest.approx(0.004)
    assert sqlite.batch.flush_when_idle  # group commit by default
    patient = batching(Config(storage_writer=StorageWriterSection(flush_when_idle=False)))
    assert not patient.batch.flush_when_idle
    cassandra = batching(Config(storage_url="cassandra://127.0.0.1:9042/nf"))
    assert cassandra.batch.max_group_items == CASSANDRA_GROUP_ITEMS
    fixed = batching(Config(storage_writer=StorageWriterSection(max_group_items=7)))
    assert fixed.batch.max_group_items == 7
    tuned = batching(
        Config(storage_writer=StorageWriterSection(max_flushes_in_flight=2, flush_timeout_s=3))
    )
    assert (tuned.max_flushes_in_flight, tuned.flush_timeout_s) == (2, 3)
