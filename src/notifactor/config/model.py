"""The configuration model: frozen attrs classes named exactly as in SPEC §2.

Each field's validator raises ``ValueError`` with a reason an operator can act
on; the loader turns it into one ``ConfigError`` line naming the dotted key.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from notifactor.config.targets import (
    SqliteTarget,
    StorageTarget,
    check_redis_url,
    parse_storage_url,
)
from notifactor.domain.identifiers import TENANT_ID
from notifactor.domain.retention import MAX_RETENTION_DAYS
from notifactor.errors import ConfigError, FieldValueError
from notifactor.supervisors.config import SupervisionConfig

LogFormat = Literal["json", "console"]
OtelExporter = Literal["none", "console", "otlp"]
JwtAlgorithm = Literal["HS256", "RS256", "ES256"]


def _finite(value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    _finite(value)
    if value <= 0:
        raise ValueError(f"must be > 0, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    _finite(value)
    if value < 0:
        raise ValueError(f"must be >= 0, got {value!r}")


def _retention_days(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    _positive(_inst, attribute, value)
    if value > MAX_RETENTION_DAYS:
        raise ValueError(
            f"must be <= {MAX_RETENTION_DAYS} (the longest time storage can keep a row), "
            f"got {value!r}"
        )


def _port(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a TCP port 0..65535, got {value!r}")


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise ValueError("must not be empty")


def _optional_redis_url(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None:
        check_redis_url(value)


def _optional_storage_url(
    _inst: object, attribute: attrs.Attribute[Any], value: str | None
) -> None:
    if value is not None:
        parse_storage_url(value)


def _optional_existing_file(
    _inst: object, attribute: attrs.Attribute[Any], value: Path | None
) -> None:
    if value is not None and not value.is_file():
        raise ValueError(f"file not found: {value}")


def _tenant_ids(_inst: object, attribute: attrs.Attribute[Any], value: Iterable[str]) -> None:
    for tenant_id in value:
        if not TENANT_ID.fullmatch(tenant_id):
            raise ValueError(f"tenant id {tenant_id!r} must match {TENANT_ID.pattern}")


def default_instance_id() -> str:
    """Hostname plus pid: unique per process on a cluster of hosts."""
    return f"{socket.gethostname()}-{os.getpid()}"


@attrs.frozen(kw_only=True)
class TenantPolicy:
    """Limits and delivery policy of one tenant (SPEC §2, ``[tenants.*]``).

    ``daily_quota = 0`` means no daily quota.
    """

    rate_per_s: float = attrs.field(default=100.0, validator=_positive)
    burst: int = attrs.field(default=200, validator=_positive)
    daily_quota: int = attrs.field(default=1_000_000, validator=_non_negative)
    max_ws_connections: int = attrs.field(default=10_000, validator=_positive)
    max_attempts: int = attrs.field(default=8, validator=_positive)
    retry_base_ms: int = attrs.field(default=500, validator=_positive)
    retry_cap_ms: int = attrs.field(default=60_000, validator=_positive)
    retention_days: int = attrs.field(default=30, validator=_retention_days)

    def __attrs_post_init__(self) -> None:
        if self.retry_cap_ms < self.retry_base_ms:
            raise FieldValueError(
                "retry_cap_ms",
                f"must be >= retry_base_ms ({self.retry_cap_ms} < {self.retry_base_ms})",
            )


@attrs.frozen(kw_only=True)
class LimitsConfig:
    """Request and frame size limits (SPEC §4, §5).

    ``body_max_bytes`` bounds every request body except a batch's, which
    ``batch_body_max_bytes`` bounds: 500 notifications of ordinary size do
    not fit in 64 KiB.
    """

    content_max_bytes: int = attrs.field(default=8192, validator=_positive)
    metadata_max_bytes: int = attrs.field(default=4096, validator=_positive)
    body_max_bytes: int = attrs.field(default=65536, validator=_positive)
    batch_max_items: int = attrs.field(default=500, validator=_positive)
    batch_body_max_bytes: int = attrs.field(default=1_048_576, validator=_positive)
    ws_max_message_bytes: int = attrs.field(default=65536, validator=_positive)
    idempotency_ttl_s: int = attrs.field(default=86_400, validator=_positive)
    accepted_record_ttl_s: int = attrs.field(default=3600, validator=_positive)
    max_stream_lag: int = attrs.field(default=100_000, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.content_max_bytes > self.body_max_bytes:
            raise FieldValueError(
                "content_max_bytes",
                f"must be <= body_max_bytes ({self.content_max_bytes} > {self.body_max_bytes})",
            )
        if self.batch_body_max_bytes < self.body_max_bytes:
            raise FieldValueError(
                "batch_body_max_bytes",
                f"must be >= body_max_bytes ({self.batch_body_max_bytes} < {self.body_max_bytes})",
            )


def _datacenters(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    for name in filter(None, (part.strip() for part in value.split(","))):
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(f"bad datacenter name {name!r}")


@attrs.frozen(kw_only=True)
class CassandraConfig:
    """How notifactor uses a Cassandra cluster (when ``storage_url`` is ``cassandra://``).

    ``replication_class = "SimpleStrategy"`` with factor 1 suits one test node;
    production uses ``NetworkTopologyStrategy`` with ``datacenters`` listed and
    ``replication_factor`` replicas in each (3 lets QUORUM survive a node).
    """

    replication_class: Literal["SimpleStrategy", "NetworkTopologyStrategy"] = "SimpleStrategy"
    replication_factor: int = attrs.field(default=1, validator=_positive)
    datacenters: str = attrs.field(default="", validator=_datacenters)
    local_dc: str | None = None
    consistency: Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL"] = (
        "LOCAL_QUORUM"
    )
    request_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    max_in_flight: int = attrs.field(default=128, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.replication_class == "NetworkTopologyStrategy" and not self.datacenter_names:
            raise FieldValueError(
                "datacenters", "NetworkTopologyStrategy needs at least one datacenter"
            )

    @property
    def datacenter_names(self) -> tuple[str, ...]:
        """The datacenters named in ``datacenters`` (comma-separated)."""
        return tuple(filter(None, (part.strip() for part in self.datacenters.split(","))))


def _allowlisted_tenants(
    _inst: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]
) -> None:
    for tenant_id in value:
        if tenant_id == "other" or not TENANT_ID.fullmatch(tenant_id):
            raise ValueError(
                f"tenant id {tenant_id!r} must match {TENANT_ID.pattern} and not be 'other'"
            )
    if len(value) > MAX_TENANT_LABELS:
        raise ValueError(f"at most {MAX_TENANT_LABELS} tenants, got {len(value)}")


#: Bound on ``observability.tenant_label_allowlist``: every listed tenant
#: multiplies the series of each tenant-labelled metric.
MAX_TENANT_LABELS = 100


@attrs.frozen(kw_only=True)
class ObservabilityConfig:
    """Metrics and introspection (``[observability]``).

    Attributes:
        tenant_label_allowlist: tenants whose id may appear as a metric label;
            every other tenant is labelled ``other``, so the number of series
            stays bounded by configuration.
        metrics_host, metrics_port: the metrics-only listener of processes
            without the REST API (``notifactor dispatcher``); port 0 turns it off.
        tree_loopback_without_token: whether ``GET /v1/admin/tree`` answers a
            loopback client that sends no token.
        tree_operator_tenants: tenants whose tokens with scope ``admin`` may
            read ``GET /v1/admin/tree``. The tree is process-wide (its crash
            messages may quote any tenant's request), so a tenant's admin
            scope alone does not open it; empty (the default) leaves the tree
            to loopback clients.
    """

    tenant_label_allowlist: tuple[str, ...] = attrs.field(
        default=(), validator=_allowlisted_tenants
    )
    metrics_host: str = attrs.field(default="127.0.0.1", validator=_non_empty)
    metrics_port: int = attrs.field(default=9464, validator=_port)
    tree_loopback_without_token: bool = True
    tree_operator_tenants: tuple[str, ...] = attrs.field(default=(), validator=_tenant_ids)


@attrs.frozen(kw_only=True)
class StorageWriterSection:
    """How the storage writers batch (``[storage_writer]``).

    Attributes:
        max_items: flush as soon as this many records are buffered.
        max_age_ms: flush once the oldest buffered record has waited this
            long; bounds the latency the writer adds.
        max_group_items: most records in one store call. 0 lets the store
            choose: a whole flush per record kind on SQLite (one transaction
            each), 64 on Cassandra (one unlogged batch per partition key).
        max_flushes_in_flight: flushes running at once; beyond it the writer
            stops taking requests (backpressure to its callers).
        flush_timeout_s: bound on one flush, retries of transient errors included.
        flush_when_idle: group commit: flush at once whenever no flush is
            running, so a lone write is not held for ``max_age_ms``; under
            load, writes gather while the previous flush runs.
    """

    max_items: int = attrs.field(default=512, validator=_positive)
    max_age_ms: float = attrs.field(default=5.0, validator=_positive)
    max_group_items: int = attrs.field(default=0, validator=_non_negative)
    max_flushes_in_flight: int = attrs.field(default=4, validator=_positive)
    flush_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    flush_when_idle: bool = True


@attrs.frozen(kw_only=True)
class AuditConfig:
    """The gateway's tenant audit trail (``[audit]``).

    Attributes:
        window_s: requests noted within one window are summarised into one
            event per tenant, subject, route, outcome and reason.
        mailbox_size: notes that may wait for the summarizer; beyond it a
            note is dropped and counted (``audit_notes_dropped_total``), so
            the request path never waits on the audit trail.
        max_ids_per_event: most notification ids one event lists; more go
            into further events.
    """

    window_s: float = attrs.field(default=1.0, validator=_positive)
    mailbox_size: int = attrs.field(default=65_536, validator=_positive)
    max_ids_per_event: int = attrs.field(default=1000, validator=_positive)


@attrs.frozen(kw_only=True)
class RuntimeConfig:
    """How the Python runtime of a long-running process is tuned (``[runtime]``).

    Attributes:
        gc_freeze_after_start: move everything alive once start-up is done
            (modules, configuration, schemas) out of the garbage collector's
            sight, so full collections only walk what the process made since.
        gc_gen0_threshold, gc_gen1_threshold, gc_gen2_threshold: the
            thresholds of :func:`gc.set_threshold`. The interpreter's own
            (700, 10, 10) run a young collection every few requests on a busy
            gateway; larger values trade a little memory for throughput.
            ``gc_gen0_threshold = 0`` leaves the interpreter's values alone.
        redis_client_checks: the Redis client's own runtime checks of each
            command (argument combinations, the server version a command
            needs). notifactor's commands are fixed and covered by its tests,
            so they are off by default: they cost several microseconds per
            command on the ingest and dispatch paths.
    """

    gc_freeze_after_start: bool = True
    redis_client_checks: bool = False
    gc_gen0_threshold: int = attrs.field(default=50_000, validator=_non_negative)
    gc_gen1_threshold: int = attrs.field(default=20, validator=_positive)
    gc_gen2_threshold: int = attrs.field(default=100, validator=_positive)


@attrs.frozen(kw_only=True)
class DispatcherConfig:
    """Timings of the partition consumers and the retry scheduler (``[dispatcher]``).

    Also two stream bounds: ``delivery_stream_max_entries``, the backlog a
    gateway's delivery stream may hold before deliveries to it are refused
    (deferred for ``full_stream_patience_s`` without spending attempts, then
    retried as failures); ``dlq_max_entries``, past which the oldest dead
    letters leave the dead-letter stream.
    """

    read_count: int = attrs.field(default=64, validator=_positive)
    block_ms: int = attrs.field(default=1000, validator=_positive)
    claim_idle_ms: int = attrs.field(default=30_000, validator=_positive)
    claim_interval_s: float = attrs.field(default=5.0, validator=_positive)
    claim_count: int = attrs.field(default=64, validator=_positive)
    max_deliveries: int = attrs.field(default=5, validator=_positive)
    attempt_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    dead_letter_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    maintenance_interval_s: float = attrs.field(default=10.0, validator=_positive)
    stale_consumer_idle_ms: int = attrs.field(default=3_600_000, validator=_positive)
    retry_poll_s: float = attrs.field(default=0.25, validator=_positive)
    retry_batch: int = attrs.field(default=256, validator=_positive)
    delivery_stream_max_entries: int = attrs.field(default=100_000, validator=_positive)
    full_stream_patience_s: float = attrs.field(default=900.0, validator=_non_negative)
    dlq_max_entries: int = attrs.field(default=1_000_000, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.claim_idle_ms <= self.attempt_timeout_s * 1000:
            raise FieldValueError(
                "claim_idle_ms",
                f"must exceed attempt_timeout_s ({self.claim_idle_ms} ms <= "
                f"{self.attempt_timeout_s} s): a slow attempt would be claimed twice",
            )


@attrs.frozen(kw_only=True)
class Config:
    """The whole configuration of one notifactor process."""

    data_dir: Path = attrs.field(default=Path("./var"))
    redis_url: str | None = attrs.field(default=None, validator=_optional_redis_url)
    storage_url: str | None = attrs.field(default=None, validator=_optional_storage_url)
    http_host: str = attrs.field(default="127.0.0.1", validator=_non_empty)
    http_port: int = attrs.field(default=8080, validator=_port)
    ws_host: str = attrs.field(default="127.0.0.1", validator=_non_empty)
    ws_port: int = attrs.field(default=8081, validator=_port)
    ws_heartbeat_s: float = attrs.field(default=25.0, validator=_positive)
    jwt_secret: str | None = attrs.field(default=None)
    #: ``None`` (unset) resolves in ``__attrs_post_init__``: HS256 without a key
    #: file, the key file's algorithm with one; it is never ``None`` after that.
    jwt_algorithm: JwtAlgorithm | None = None
    jwt_public_key_file: Path | None = attrs.field(default=None, validator=_optional_existing_file)
    jwt_jwks_file: Path | None = attrs.field(default=None, validator=_optional_existing_file)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    instance_id: str = attrs.field(factory=default_instance_id, validator=_non_empty)
    log_format: LogFormat = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    otel_exporter: OtelExporter = "none"
    shutdown_grace_s: float = attrs.field(default=10.0, validator=_positive)
    limits: LimitsConfig = attrs.Factory(LimitsConfig)
    cassandra: CassandraConfig = attrs.Factory(CassandraConfig)
    dispatcher: DispatcherConfig = attrs.Factory(DispatcherConfig)
    tenants: Mapping[str, TenantPolicy] = attrs.field(
        factory=lambda: {"default": TenantPolicy()}, validator=_tenant_ids
    )
    supervision: SupervisionConfig = attrs.Factory(SupervisionConfig)
    observability: ObservabilityConfig = attrs.Factory(ObservabilityConfig)
    runtime: RuntimeConfig = attrs.Factory(RuntimeConfig)
    storage_writer: StorageWriterSection = attrs.Factory(StorageWriterSection)
    audit: AuditConfig = attrs.Factory(AuditConfig)

    def __attrs_post_init__(self) -> None:
        if self.jwt_secret is not None and not self.jwt_secret.strip():
            raise FieldValueError("jwt_secret", "must not be empty")
        if self.jwt_public_key_file and self.jwt_jwks_file:
            raise FieldValueError(
                "jwt_jwks_file", "set only one of jwt_public_key_file and jwt_jwks_file"
            )
        asymmetric = self.jwt_public_key_file is not None or self.jwt_jwks_file is not None
        if asymmetric and self.jwt_algorithm == "HS256":
            raise FieldValueError(
                "jwt_algorithm",
                "HS256 verifies with jwt_secret, not with a key file: "
                "set RS256 or ES256, or leave jwt_algorithm unset to follow the key",
            )
        if asymmetric and self.jwt_algorithm is None:
            # A key file switches verification to the key's algorithm (SPEC §2).
            object.__setattr__(self, "jwt_algorithm", self._key_file_algorithm())
        if not asymmetric and self.jwt_algorithm not in (None, "HS256"):
            raise FieldValueError(
                "jwt_algorithm",
                f"{self.jwt_algorithm} needs jwt_public_key_file or jwt_jwks_file",
            )
        if self.jwt_algorithm is None:
            object.__setattr__(self, "jwt_algorithm", "HS256")

    def _key_file_algorithm(self) -> JwtAlgorithm:
        """RS256 or ES256, as the configured public key or JWKS file implies."""
        from notifactor.auth.verify import infer_algorithm  # the auth layer reads keys

        try:
            return infer_algorithm(
                public_key_file=self.jwt_public_key_file, jwks_file=self.jwt_jwks_file
            )
        except ConfigError as error:
            raise FieldValueError(error.key, error.reason) from None

    @property
    def storage(self) -> StorageTarget:
        """Where notifications live: the configured URL, else SQLite in the data dir."""
        if self.storage_url is None:
            return SqliteTarget(path=(self.data_dir / "notifactor.db").absolute())
        return parse_storage_url(self.storage_url)

    def tenant_policy(self, tenant_id: str) -> TenantPolicy:
        """The policy of one tenant: its own section over ``[tenants.default]``."""
        policy = self.tenants.get(tenant_id) or self.tenants.get("default")
        return policy if policy is not None else TenantPolicy()
