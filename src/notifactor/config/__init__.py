"""Configuration: TOML plus ``NOTIFACTOR_*`` environment overrides (SPEC §2)."""

from notifactor.config.loader import CONFIG_PATH_ENV, load_config, structure_config
from notifactor.config.model import (
    AuditConfig,
    CassandraConfig,
    Config,
    DispatcherConfig,
    LimitsConfig,
    ObservabilityConfig,
    RuntimeConfig,
    StorageWriterSection,
    TenantPolicy,
)
from notifactor.config.targets import CassandraTarget, SqliteTarget, StorageTarget
from notifactor.errors import ConfigError

__all__ = [
    "CONFIG_PATH_ENV",
    "AuditConfig",
    "CassandraConfig",
    "CassandraTarget",
    "Config",
    "ConfigError",
    "DispatcherConfig",
    "LimitsConfig",
    "ObservabilityConfig",
    "RuntimeConfig",
    "SqliteTarget",
    "StorageTarget",
    "StorageWriterSection",
    "TenantPolicy",
    "load_config",
    "structure_config",
]
