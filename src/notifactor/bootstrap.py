"""Wiring: adapters and actors assembled into one supervision tree per command.

This is the only module that knows every concrete adapter. ``serve`` builds:

    root (config.supervision.root; rest_for_one by default)
    ├── redis        the embedded Redis-compatible server (only without redis_url)
    └── services     opens the Redis client and the store, then runs:
        └── gateway  (config.supervision.gateway)
            └── http   the REST listener (hypercorn)

A restart of ``redis`` restarts ``services`` after it (rest_for_one), so
nothing keeps talking to a server that went away.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import attrs
import trio

from notifactor.adapters.cassandra_schema import Replication, migrate
from notifactor.adapters.cassandra_session import connect_cassandra
from notifactor.adapters.cassandra_store import CassandraNotificationStore
from notifactor.adapters.embedded_redis import run_embedded_redis
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.auth.secret import resolve_jwt_secret
from notifactor.auth.verify import build_verifier
from notifactor.config import CassandraTarget, Config, SqliteTarget
from notifactor.errors import ConfigError
from notifactor.gateway.app import GatewayApp
from notifactor.gateway.context import Gateway
from notifactor.gateway.server import run_http_server
from notifactor.observability.logging import configure_logging
from notifactor.ports.notification_store import NotificationStore
from notifactor.supervisors import (
    ChildSpec,
    NodeStatistics,
    Supervisor,
    SupervisorGaveUp,
    current_stop_signal,
    supervisor_from_config,
)

log = logging.getLogger("notifactor.bootstrap")

EXIT_OK = 0
EXIT_FAILURE = 1


class SupervisionUnhealthy(RuntimeError):
    """A node of the tree is not running (it is restarting, or gave up)."""


@attrs.define
class ServeState:
    """What the children of one ``serve`` tree hand to each other."""

    config: Config
    jwt_secret: str
    redis_url: str | None = None
    root: Supervisor | None = None
    http_port: int | None = None
    ready: trio.Event = attrs.Factory(trio.Event)


def run_serve(config: Config) -> int:
    """``notifactor serve``: every role in one process until SIGINT/SIGTERM."""
    configure_logging(
        log_format=config.log_format, level=config.log_level, instance_id=config.instance_id
    )
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot create {config.data_dir}: {exc}") from None
    secret, secret_path = resolve_jwt_secret(config, create=True)
    if secret_path is not None:
        log.info(
            "JWT secret generated in %s; mint a token with `notifactor token --tenant T --sub U`",
            secret_path,
        )
    state = ServeState(config=config, jwt_secret=secret, redis_url=config.redis_url)
    return trio.run(serve_until_signalled, state)


async def serve_until_signalled(state: ServeState) -> int:
    """Run the serve tree; the first SIGINT/SIGTERM stops it gracefully."""
    root = build_serve_tree(state)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, root, state.config.shutdown_grace_s)
            try:
                await root.run()
            except SupervisorGaveUp as exc:
                log.error("supervision tree gave up: %s", exc)
                return EXIT_FAILURE
            finally:
                nursery.cancel_scope.cancel()
    log.info("stopped")
    return EXIT_OK


async def _stop_on_signal(signals: AsyncIterator[int], root: Supervisor, grace_s: float) -> None:
    async for signum in signals:
        log.info("received %s: stopping within %.0fs", signal.Signals(signum).name, grace_s)
        root.request_stop()
        break


def build_serve_tree(state: ServeState) -> Supervisor:
    """The root supervisor of ``serve``, tuned by ``[supervision]``."""
    config = state.config
    children: list[ChildSpec] = []
    if config.redis_url is None:
        children.append(ChildSpec(id="redis", start=partial(_run_embedded_redis, state)))
    services_holder: list[Supervisor] = []
    children.append(
        ChildSpec(
            id="services",
            start=partial(_run_services, state, services_holder),
            kind="supervisor",
            introspect=lambda: _services_statistics(services_holder),
        )
    )
    root = supervisor_from_config("root", config.supervision.root, children)
    state.root = root
    return root


async def _run_embedded_redis(
    state: ServeState, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    workdir = state.config.data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(run_embedded_redis, workdir))
        state.redis_url = url
        log.info("embedded Redis-compatible server listening on %s", url)
        task_status.started()
        await current_stop_signal().wait()
        nursery.cancel_scope.cancel()


async def _run_services(
    state: ServeState,
    holder: list[Supervisor],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = state.config
    if state.redis_url is None:
        raise RuntimeError("no Redis URL: the embedded server did not start")
    async with (
        open_redis(state.redis_url, client_name=config.instance_id) as redis,
        open_store(config) as store,
    ):
        gateway = Gateway(
            config=config,
            verifier=build_verifier(config, hs256_secret=state.jwt_secret),
            ingest=RedisIngest(
                redis,
                IngestSettings(
                    idempotency_ttl_s=config.limits.idempotency_ttl_s,
                    record_ttl_s=config.limits.accepted_record_ttl_s,
                    max_stream_lag=config.limits.max_stream_lag,
                ),
            ),
            store=store,
            supervision_check=partial(check_supervision, state),
        )
        http = ChildSpec(id="http", start=partial(_run_http, state, GatewayApp(gateway)))
        gateway_tree = supervisor_from_config("gateway", config.supervision.gateway, [http])
        services = Supervisor(
            "services",
            [gateway_tree.child_spec()],
            strategy="one_for_one",
            intensity=config.supervision.root.intensity,
            period_s=config.supervision.root.period_s,
            shutdown_s=config.shutdown_grace_s,
        )
        holder[:] = [services]
        await services.run(task_status=task_status)


async def _run_http(
    state: ServeState,
    app: GatewayApp,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(run_http_server, app, state.config)
        state.http_port = port
        log.info("REST API listening on http://%s:%d", state.config.http_host, port)
        state.ready.set()
        task_status.started()
        await current_stop_signal().wait()
        nursery.cancel_scope.cancel()


def _services_statistics(holder: list[Supervisor]) -> NodeStatistics:
    if holder:
        return holder[0].statistics()
    return NodeStatistics(id="services", kind="supervisor", state="starting")


async def check_supervision(state: ServeState) -> None:
    """Raise when any node of the tree is not running (``/health``'s check)."""
    if state.root is None:
        raise SupervisionUnhealthy("tree not built")
    for path, node in state.root.statistics().walk():
        if node.state != "running":
            raise SupervisionUnhealthy(f"{'/'.join(path)} is {node.state}")


@asynccontextmanager
async def open_store(config: Config) -> AsyncIterator[NotificationStore]:
    """The configured store, opened (schema created for SQLite), closed on exit."""
    target = config.storage

    def retention_days(tenant_id: str) -> int:
        return config.tenant_policy(tenant_id).retention_days

    store: NotificationStore
    if isinstance(target, SqliteTarget):
        store = await SqliteNotificationStore.open(target.path, retention_days)
    else:
        session = await connect_cassandra(
            target.contact_points,
            request_timeout=config.cassandra.request_timeout_s,
            local_dc=config.cassandra.local_dc,
        )
        store = await CassandraNotificationStore.open(
            session,
            target.keyspace,
            retention_days,
            max_in_flight=config.cassandra.max_in_flight,
            owns_session=True,
        )
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + config.shutdown_grace_s
            await store.aclose()


def replication_of(config: Config) -> Replication:
    """The keyspace replication ``[cassandra]`` asks for."""
    cassandra = config.cassandra
    if cassandra.replication_class == "SimpleStrategy":
        return Replication.simple(cassandra.replication_factor)
    return Replication.network_topology(
        dict.fromkeys(cassandra.datacenter_names, cassandra.replication_factor)
    )


def run_migrate(config: Config) -> int:
    """``notifactor migrate``: create or upgrade the schema of the configured store."""
    configure_logging(
        log_format=config.log_format, level=config.log_level, instance_id=config.instance_id
    )
    # A one-shot command reports the driver's failure itself, in one line.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    return trio.run(_migrate, config)


async def _migrate(config: Config) -> int:
    target = config.storage
    if isinstance(target, CassandraTarget):
        session = await connect_cassandra(
            target.contact_points,
            request_timeout=config.cassandra.request_timeout_s,
            local_dc=config.cassandra.local_dc,
        )
        try:
            version = await migrate(session, target.keyspace, replication=replication_of(config))
        finally:
            await session.close()
        print(f"notifactor: keyspace {target.keyspace} is at schema version {version}")
        return EXIT_OK
    async with open_store(config):
        pass
    print(f"notifactor: SQLite schema ready in {target.path}")
    return EXIT_OK
