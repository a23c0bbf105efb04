"""Configuration loading: defaults, TOML, environment overrides and every error path."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifactor.config import (
    CassandraTarget,
    Config,
    ConfigError,
    SqliteTarget,
    TenantPolicy,
    load_config,
)


def load(tmp_path: Path, toml: str | None = None, **env: str) -> Config:
    path = None
    if toml is not None:
        path = tmp_path / "notifactor.toml"
        path.write_text(toml, encoding="utf-8")
    return load_config(path, env)


def error(tmp_path: Path, toml: str | None = None, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, **env)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_follow_the_spec(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.data_dir == Path("./var")
    assert config.redis_url is None
    assert config.http_host == "127.0.0.1"
    assert config.http_port == 8080
    assert config.ws_host == "127.0.0.1"
    assert config.ws_port == 8081
    assert config.log_format == "json"
    assert config.otel_exporter == "none"
    assert config.jwt_secret is None
    assert config.instance_id
    assert config.storage == SqliteTarget(path=Path("./var/notifactor.db").absolute())


def test_toml_values_and_env_overrides(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        'http_port = 9000\ndata_dir = "/srv/n"\n[supervision.dispatcher]\nintensity = 2\n',
        NOTIFACTOR_WS_PORT="9001",
        NOTIFACTOR_SUPERVISION__DISPATCHER__INTENSITY="5",
        NOTIFACTOR_LOG_FORMAT="console",
    )
    assert config.http_port == 9000
    assert config.ws_port == 9001
    assert config.data_dir == Path("/srv/n")
    assert config.supervision.dispatcher.intensity == 5
    assert config.log_format == "console"
    assert config.storage == SqliteTarget(path=Path("/srv/n/notifactor.db"))


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("http_port = 7001\n", encoding="utf-8")
    assert load_config(None, {"NOTIFACTOR_CONFIG": str(path)}).http_port == 7001


def test_storage_urls(tmp_path: Path) -> None:
    cassandra = load(tmp_path, NOTIFACTOR_STORAGE_URL="cassandra://h1:9142,h2/notif").storage
    assert cassandra == CassandraTarget(
        contact_points=(("h1", 9142), ("h2", 9042)), keyspace="notif"
    )
    sqlite = load(tmp_path, NOTIFACTOR_STORAGE_URL="sqlite:///tmp/x.db").storage
    assert sqlite == SqliteTarget(path=Path("/tmp/x.db"))


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "rediss://cache.example:6380", "unix:///tmp/r.sock"]
)
def test_redis_urls_accepted(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, NOTIFACTOR_REDIS_URL=url).redis_url == url


def test_tenant_policy_inherits_default(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[tenants.default]\nburst = 50\nrate_per_s = 10\n[tenants."acme"]\nrate_per_s = 3\n',
    )
    assert config.tenant_policy("acme").rate_per_s == 3
    assert config.tenant_policy("acme").burst == 50
    assert config.tenant_policy("other") == config.tenant_policy("default")
    assert config.tenant_policy("other").rate_per_s == 10


def test_tenant_policy_default_when_unconfigured(tmp_path: Path) -> None:
    assert load(tmp_path).tenant_policy("anyone") == TenantPolicy()


def test_tenant_override_from_environment(tmp_path: Path) -> None:
    config = load(tmp_path, NOTIFACTOR_TENANTS__DEFAULT__DAILY_QUOTA="7")
    assert config.tenant_policy("x").daily_quota == 7


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NOTIFACTOR_HTTP_PORT": "eighty"}, "http_port: expected an integer, got 'eighty'"),
        ({"NOTIFACTOR_HTTP_PORT": "70000"}, "http_port: must be a TCP port"),
        ({"NOTIFACTOR_WS_PORT": "-1"}, "ws_port: must be a TCP port"),
        ({"NOTIFACTOR_HTTP_HOST": " "}, "http_host: must not be empty"),
        ({"NOTIFACTOR_HTTP_PROT": "1"}, "http_prot: unknown key"),
        ({"NOTIFACTOR_REDIS_URL": "http://x"}, "redis_url: scheme must be one of"),
        ({"NOTIFACTOR_REDIS_URL": "redis://"}, "redis_url: URL needs a host"),
        ({"NOTIFACTOR_REDIS_URL": "unix://"}, "redis_url: unix URL needs a socket path"),
        ({"NOTIFACTOR_REDIS_URL": "redis://h:port"}, "redis_url: bad port"),
        ({"NOTIFACTOR_STORAGE_URL": "mysql://x"}, "storage_url: unsupported scheme 'mysql'"),
        ({"NOTIFACTOR_STORAGE_URL": "sqlite"}, "storage_url: expected sqlite:///path"),
        (
            {"NOTIFACTOR_STORAGE_URL": "sqlite://rel.db"},
            "storage_url: sqlite URL needs an absolute",
        ),
        (
            {"NOTIFACTOR_STORAGE_URL": "cassandra://h:9042"},
            "storage_url: cassandra URL needs a keyspace",
        ),
        ({"NOTIFACTOR_STORAGE_URL": "cassandra://h:x/ks"}, "storage_url: bad port 'x'"),
        ({"NOTIFACTOR_STORAGE_URL": "cassandra://:9042/ks"}, "storage_url: empty host"),
        ({"NOTIFACTOR_STORAGE_URL": "cassandra://h/9bad"}, "storage_url: keyspace must be"),
        ({"NOTIFACTOR_LOG_FORMAT": "xml"}, "log_format: must be one of json, console"),
        ({"NOTIFACTOR_LOG_LEVEL": "loud"}, "log_level: must be one of"),
        (
            {"NOTIFACTOR_OTEL_EXPORTER": "jaeger"},
            "otel_exporter: must be one of none, console, otlp",
        ),
        ({"NOTIFACTOR_JWT_SECRET": " "}, "jwt_secret: must not be empty"),
        (
            {"NOTIFACTOR_JWT_PUBLIC_KEY_FILE": "/nonexistent/key.pem"},
            "jwt_public_key_file: file not found",
        ),
        ({"NOTIFACTOR_JWT_ALGORITHM": "RS256"}, "jwt_algorithm: RS256 needs jwt_public_key_file"),
        ({"NOTIFACTOR_JWT_ALGORITHM": "none"}, "jwt_algorithm: must be one of HS256, RS256, ES256"),
        ({"NOTIFACTOR_INSTANCE_ID": ""}, "instance_id: must not be empty"),
        ({"NOTIFACTOR_SHUTDOWN_GRACE_S": "0"}, "shutdown_grace_s: must be > 0"),
        (
            {"NOTIFACTOR_SUPERVISION__DISPATCHER__INTENSITY": "x"},
            "supervision.dispatcher.intensity: expected an integer",
        ),
        (
            {"NOTIFACTOR_SUPERVISION__DISPATCHER__STRATEGY": "all"},
            "supervision.dispatcher.strategy: must be one of",
        ),
        ({"NOTIFACTOR_SUPERVISION__NOPE": "1"}, "supervision.nope: unknown key"),
        (
            {"NOTIFACTOR_SUPERVISION__PARTITIONS": "2000"},
            "supervision.partitions: must be <= consumers.max_children (got 2000 > 1024)",
        ),
        ({"NOTIFACTOR_TENANTS__DEFAULT__BURST": "0"}, "tenants.default.burst: must be > 0"),
        (
            {"NOTIFACTOR_TENANTS__DEFAULT__RATE_PER_S": "fast"},
            "tenants.default.rate_per_s: expected a number",
        ),
        (
            {"NOTIFACTOR_LIMITS__BATCH_BODY_MAX_BYTES": "1000"},
            "limits.batch_body_max_bytes: must be >= body_max_bytes",
        ),
        (
            {"NOTIFACTOR_LIMITS__CONTENT_MAX_BYTES": "100000"},
            "limits.content_max_bytes: must be <= body_max_bytes",
        ),
        ({"NOTIFACTOR_HTTP_PORT__X": "1"}, "http_port: expected an integer, got {'x': '1'}"),
        ({"NOTIFACTOR_LIMITS____X": "1"}, "malformed environment variable name"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    assert expected in error(tmp_path, **env)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("http_port = [1]\n", "http_port: expected an integer, got [1]"),
        ("http_port = true\n", "http_port: expected an integer, got True"),
        ("http_port =\n", "is not valid TOML"),
        ("limits = 3\n", "limits: expected a table"),
        ("[limits]\nfoo = 1\n", "limits.foo: unknown key"),
        ("tenants = 3\n", "tenants: must be a table of tenant policies"),
        ("[tenants]\ndefault = 3\n", "tenants.default: must be a table"),
        ("[tenants]\nacme = 3\n", "tenants.acme: must be a table"),
        ('[tenants."bad id!"]\nburst = 1\n', "tenants: tenant id 'bad id!' must match"),
        (
            '[tenants."acme"]\nretry_cap_ms = 1\n',
            "tenants.acme.retry_cap_ms: must be >= retry_base_ms",
        ),
        ('[tenants."acme"]\nunknown = 1\n', "tenants.acme.unknown: unknown key"),
        ('[tenants."acme"]\ndaily_quota = -1\n', "tenants.acme.daily_quota: must be >= 0"),
        ("[supervision.dispatcher]\nbackoff_min_s = 100\n", "supervision.dispatcher"),
    ],
)
def test_bad_toml_names_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    assert expected in error(tmp_path, toml)


def test_env_key_inside_a_scalar_from_toml(tmp_path: Path) -> None:
    message = error(tmp_path, "http_port = 1\n", NOTIFACTOR_HTTP_PORT__X="1")
    assert message.startswith("http_port.x: NOTIFACTOR_HTTP_PORT__X names a key inside")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config: file not found"):
        load_config(tmp_path / "absent.toml", {})


def test_unreadable_config_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="config: cannot read"):
        load_config(path, {})


def test_harness_variables_are_not_settings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        NOTIFACTOR_TEST_REDIS_URL="redis://x",
        NOTIFACTOR_CACHE_DIR="/tmp/c",
        NOTIFACTOR_BENCH_SECONDS="3",
    )
    assert config.redis_url is None


def test_cassandra_section(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[cassandra]\nreplication_class = "NetworkTopologyStrategy"\n'
        'datacenters = "dc1, dc2"\nreplication_factor = 3\n',
    )
    assert config.cassandra.datacenter_names == ("dc1", "dc2")
    assert config.cassandra.replication_factor == 3


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[cassandra]\nreplication_class = "NetworkTopologyStrategy"\n',
            "cassandra.datacenters: NetworkTopologyStrategy needs",
        ),
        (
            '[cassandra]\nreplication_class = "Everywhere"\n',
            "cassandra.replication_class: must be one of",
        ),
        ('[cassandra]\ndatacenters = "dc 1"\n', "cassandra.datacenters: bad datacenter name"),
        ("[cassandra]\nreplication_factor = 0\n", "cassandra.replication_factor: must be > 0"),
        ("[limits]\nmax_stream_lag = -1\n", "limits.max_stream_lag: must be >= 0"),
    ],
)
def test_bad_cassandra_and_limits(tmp_path: Path, toml: str, expected: str) -> None:
    assert expected in error(tmp_path, toml)


def test_dispatcher_section(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        NOTIFACTOR_DISPATCHER__CLAIM_IDLE_MS="2000",
        NOTIFACTOR_DISPATCHER__ATTEMPT_TIMEOUT_S="1",
    )
    assert config.dispatcher.claim_idle_ms == 2000
    assert config.dispatcher.attempt_timeout_s == 1.0


def test_dispatcher_stream_bounds(tmp_path: Path) -> None:
    defaults = load(tmp_path).dispatcher
    assert (defaults.delivery_stream_max_entries, defaults.dlq_max_entries) == (100_000, 1_000_000)
    config = load(
        tmp_path,
        NOTIFACTOR_DISPATCHER__DELIVERY_STREAM_MAX_ENTRIES="5000",
        NOTIFACTOR_DISPATCHER__DLQ_MAX_ENTRIES="20000",
    )
    assert config.dispatcher.delivery_stream_max_entries == 5000
    assert config.dispatcher.dlq_max_entries == 20000
    message = error(tmp_path, NOTIFACTOR_DISPATCHER__DLQ_MAX_ENTRIES="0")
    assert message.startswith("dispatcher.dlq_max_entries: must be > 0")


def test_full_stream_patience_reaches_the_dispatcher_settings(tmp_path: Path) -> None:
    from notifactor.dispatcher.settings import settings_from_config

    assert load(tmp_path).dispatcher.full_stream_patience_s == 900.0
    config = load(tmp_path, NOTIFACTOR_DISPATCHER__FULL_STREAM_PATIENCE_S="0")
    settings = settings_from_config(config, mark_delivered_on_route=False)
    assert settings.full_stream_patience_s == 0.0
    message = error(tmp_path, NOTIFACTOR_DISPATCHER__FULL_STREAM_PATIENCE_S="-1")
    assert message.startswith("dispatcher.full_stream_patience_s: must be >= 0")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize(
    "variable",
    [
        "NOTIFACTOR_DISPATCHER__FULL_STREAM_PATIENCE_S",
        "NOTIFACTOR_TENANTS__DEFAULT__RATE_PER_S",
        "NOTIFACTOR_SHUTDOWN_GRACE_S",
    ],
)
def test_numbers_must_be_finite(tmp_path: Path, variable: str, value: str) -> None:
    assert "must be a finite number" in error(tmp_path, **{variable: value})


def test_dispatcher_claim_must_outlast_an_attempt(tmp_path: Path) -> None:
    message = error(tmp_path, NOTIFACTOR_DISPATCHER__CLAIM_IDLE_MS="500")
    assert message.startswith("dispatcher.claim_idle_ms: must exceed attempt_timeout_s")


def test_tree_operator_tenants_are_tenant_ids() -> None:
    loaded = load_config(None, {"NOTIFACTOR_OBSERVABILITY__TREE_OPERATOR_TENANTS": "ops, ops-2"})
    assert loaded.observability.tree_operator_tenants == ("ops", "ops-2")
    with pytest.raises(ConfigError) as info:
        load_config(None, {"NOTIFACTOR_OBSERVABILITY__TREE_OPERATOR_TENANTS": "no spaces"})
    assert "observability.tree_operator_tenants" in str(info.value)


def test_the_sessions_mailbox_size_bounds_each_session_outbox() -> None:
    from notifactor.edge.settings import settings_from_config

    assert settings_from_config(load_config(None, {})).outbox_size == 256
    sized = load_config(None, {"NOTIFACTOR_SUPERVISION__SESSIONS__MAILBOX_SIZE": "32"})
    assert settings_from_config(sized).outbox_size == 32
