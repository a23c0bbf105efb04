"""Redis and storage URLs: what passes validation must be usable; the rest is one ConfigError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.config import CassandraTarget, ConfigError, load_config
from notifactor.config.targets import check_redis_url, parse_storage_url

SECRET = "s" * 40


def _load(**env: str) -> object:
    return load_config(None, env={"NOTIFACTOR_JWT_SECRET": SECRET, **env})


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?db=x",
        "redis://h/abc",
        "redis://h/-1",
        "redis://h/0/1",
        "rediss://h:6380/1x",
        "unix:///run/redis.sock?db=one",
    ],
)
def test_a_redis_url_with_a_bad_db_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^redis_url: .*db"):
        _load(NOTIFACTOR_REDIS_URL=url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h",
        "redis://h/",
        "redis://h:6379/0",
        "redis://user:pw@h:6379/15",
        "redis://h?db=3",
        "unix:///run/redis.sock",
        "unix:///run/redis.sock?db=2",
    ],
)
def test_a_redis_url_with_a_usable_db_passes(url: str) -> None:
    check_redis_url(url)


@given(st.integers(min_value=0, max_value=10_000))
def test_any_numeric_db_passes(db: int) -> None:
    check_redis_url(f"redis://h:6379/{db}")


def test_a_bracketed_ipv6_cassandra_host_is_parsed_without_brackets() -> None:
    target = parse_storage_url("cassandra://[::1]:9042,[fe80::2]/ks")
    assert isinstance(target, CassandraTarget)
    assert target.contact_points == (("::1", 9042), ("fe80::2", 9042))


@pytest.mark.parametrize(
    "url", ["cassandra://::1:9042/ks", "cassandra://[::1/ks", "cassandra://[nothost]:9042/ks"]
)
def test_an_unbracketed_or_broken_ipv6_cassandra_host_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^storage_url: "):
        _load(NOTIFACTOR_STORAGE_URL=url)
