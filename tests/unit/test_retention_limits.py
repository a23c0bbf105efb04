"""The longest retention a tenant may configure: every TTL a store writes stays within bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.config import ConfigError, TenantPolicy, load_config
from notifactor.domain.retention import (
    INDEX_TTL_MARGIN_S,
    MAX_RETENTION_DAYS,
    MAX_TTL_S,
    ttl_seconds,
)

CASSANDRA_MAX_TTL_S = 630_720_000  # 20 years: Cassandra refuses any larger TTL


def load_error(tmp_path: Path, toml: str) -> str:
    path = tmp_path / "notifactor.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_bound_is_cassandras_ttl_limit_less_the_index_margin() -> None:
    assert MAX_TTL_S == CASSANDRA_MAX_TTL_S
    assert INDEX_TTL_MARGIN_S == 86_400
    assert MAX_RETENTION_DAYS == 7299


@given(
    retention_days=st.integers(min_value=1, max_value=MAX_RETENTION_DAYS),
    record_us=st.integers(min_value=0, max_value=2**62),
    now_us=st.integers(min_value=0, max_value=2**62),
)
def test_every_ttl_of_an_allowed_retention_fits_cassandra(
    retention_days: int, record_us: int, now_us: int
) -> None:
    ttl = ttl_seconds(record_us, retention_days, now_us)
    if ttl is not None:
        assert 1 <= ttl + INDEX_TTL_MARGIN_S <= CASSANDRA_MAX_TTL_S


def test_the_longest_retention_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "notifactor.toml"
    path.write_text(f"[tenants.default]\nretention_days = {MAX_RETENTION_DAYS}\n", "utf-8")
    assert load_config(path, {}).tenant_policy("t").retention_days == MAX_RETENTION_DAYS


@pytest.mark.parametrize("days", [MAX_RETENTION_DAYS + 1, 36_500, 999_999_999])
def test_a_longer_retention_is_refused_naming_the_key(tmp_path: Path, days: int) -> None:
    message = load_error(tmp_path, f'[tenants."acme"]\nretention_days = {days}\n')
    assert message.startswith(f"tenants.acme.retention_days: must be <= {MAX_RETENTION_DAYS}"), (
        message
    )
    with pytest.raises(ValueError, match=f"must be <= {MAX_RETENTION_DAYS}"):
        TenantPolicy(retention_days=days)


def test_a_longer_default_retention_from_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^tenants\.default\.retention_days: must be <="):
        load_config(None, {"NOTIFACTOR_TENANTS__DEFAULT__RETENTION_DAYS": "36500"})
