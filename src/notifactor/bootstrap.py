"""Wiring: adapters and actors assembled into one supervision tree per command.

This is the only module that knows every concrete adapter. ``serve`` builds:

    root                  config.supervision.root (rest_for_one by default)
    ├── metrics           /metrics on its own port (dispatcher-only processes)
    ├── redis             the embedded Redis-compatible server (only without redis_url)
    └── services          rest_for_one; opens the Redis client and the store
        ├── writers       the storage writer actor
        ├── retention-sweeper   SQLite only
        ├── dispatcher    partition consumers and the retry scheduler (role dispatcher)
        └── gateway       audit (the tenant audit trail), ingest-sender (pipelines
                          the ingest calls), http (REST) and ws (the WebSocket edge)
                          (role gateway)

``notifactor gateway`` and ``notifactor dispatcher`` build the same tree with
one role each. A restart of ``redis`` restarts ``services`` after it, and a
restart of the writers restarts what writes through them (rest_for_one), so
nothing keeps talking to a server or an actor that went away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import attrs
import coredis
import trio
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

from notifactor.actors import ActorRef
from notifactor.actors.audit_trail import AuditTrail, summarizer_for
from notifactor.actors.retention_sweeper import run_retention_sweeper
from notifactor.actors.stop import StopSignal, set_hurry_signal
from notifactor.actors.storage_writer import (
    StorageWriterClient,
    WriterMessage,
)
from notifactor.adapters.cassandra_schema import migrate
from notifactor.adapters.embedded_redis import (
    EmbeddedRedisError,
    lock_workdir,
    run_embedded_redis,
)
from notifactor.adapters.redis_client import open_redis, pool_size_for
from notifactor.adapters.redis_dlq import RedisDeadLetterQueue, append_slack_ms
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.redis_ingest_pipeline import PipelinedIngest
from notifactor.adapters.redis_presence import RedisPresence
from notifactor.auth.secret import MIN_SECRET_BYTES, resolve_jwt_secret
from notifactor.auth.verify import TokenVerifier, build_verifier
from notifactor.config import CassandraTarget, Config, SqliteTarget
from notifactor.dispatcher.replay import ReplayService
from notifactor.dispatcher.runner import build_dispatcher, redis_deps
from notifactor.dispatcher.settings import settings_from_config
from notifactor.domain.audit_summary import AuditNote
from notifactor.edge.runner import WsEdge
from notifactor.errors import ConfigError
from notifactor.gateway import problems
from notifactor.gateway.app import GatewayApp
from notifactor.gateway.context import Gateway
from notifactor.gateway.server import run_http_server
from notifactor.listen_check import check_can_listen, listen_addresses
from notifactor.observability.health import HealthCheck
from notifactor.observability.instrumented import InstrumentedIngest
from notifactor.observability.logging import configure_logging
from notifactor.observability.metrics_server import run_metrics_server
from notifactor.observability.supervision_metrics import register_supervision_metrics
from notifactor.observability.tracing import configure_tracing, shutdown_tracing
from notifactor.ports.notification_store import NotificationStore
from notifactor.runtime_tuning import (
    freeze_start_up_objects,
    tune_collector,
    tune_redis_client,
)
from notifactor.storage_setup import (
    check_storage_ready,
    connect_configured_cassandra,
    open_store,
    replication_of,
    storage_writer_for,
)
from notifactor.supervisors import (
    ChildSpec,
    NodeStatistics,
    Supervisor,
    SupervisorGaveUp,
    actor_spec,
    current_stop_signal,
    supervisor_from_config,
)
from notifactor.supervisors.statistics import not_running

log = logging.getLogger("notifactor.bootstrap")

EXIT_OK = 0
EXIT_FAILURE = 1


class SupervisionUnhealthy(RuntimeError):
    """A node of the tree is not running (it is restarting, or gave up)."""


@attrs.define
class ServeState:
    """What the children of one ``serve`` tree hand to each other."""

    config: Config
    #: The bearer-token check of the gateway and the edge; None without the gateway role.
    verifier: TokenVerifier | None
    redis_url: str | None = None
    roles: frozenset[str] = frozenset({"gateway", "dispatcher"})
    root: Supervisor | None = None
    http_port: int | None = None
    ready: trio.Event = attrs.Factory(trio.Event)
    #: The services' Redis and storage checks while they hold the connections
    #: (the metrics listener's ``/health``); empty otherwise.
    dependency_checks: dict[str, HealthCheck] = attrs.Factory(dict)


ALL_ROLES = frozenset({"gateway", "dispatcher"})


def run_serve(config: Config) -> int:
    """``notifactor serve``: every role in one process until SIGINT/SIGTERM."""
    return _run_roles(config, ALL_ROLES, command="serve")


def run_gateway(config: Config) -> int:
    """``notifactor gateway``: the HTTP API (and WebSocket edge) only; scale out by running many."""
    return _run_roles(config, frozenset({"gateway"}), command="gateway")


def run_dispatcher(config: Config) -> int:
    """``notifactor dispatcher``: stream consumers, retries and storage writers only."""
    return _run_roles(config, frozenset({"dispatcher"}), command="dispatcher")


def _run_roles(config: Config, roles: frozenset[str], *, command: str) -> int:
    configure_logging(
        log_format=config.log_format, level=config.log_level, instance_id=config.instance_id
    )
    if command != "serve" and config.redis_url is None:
        raise ConfigError(
            "redis_url",
            f"required by `notifactor {command}`: every gateway and dispatcher must share "
            "one Redis (only `serve` runs an embedded one)",
        )
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot create {config.data_dir}: {exc}") from None
    with contextlib.ExitStack() as held:
        if config.redis_url is None:
            held.callback(os.close, _take_redis_workdir(config.data_dir / "redis"))
        return _run_tree(config, roles, command=command)


def _take_redis_workdir(workdir: Path) -> int:
    """The embedded server's directory, writable and locked for this process (exit 2 if not)."""
    try:
        fd = lock_workdir(workdir)
    except EmbeddedRedisError:
        raise ConfigError(
            "data_dir",
            f"{workdir.parent} is in use by another `notifactor serve`; "
            "give each instance its own data_dir",
        ) from None
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot use {workdir}: {exc}") from None
    if not os.access(workdir, os.W_OK):
        os.close(fd)
        raise ConfigError("data_dir", f"{workdir} is not writable")
    return fd


def _run_tree(config: Config, roles: frozenset[str], *, command: str) -> int:
    secret: str | None = None
    secret_path: Path | None = None
    if "gateway" in roles and config.jwt_algorithm == "HS256":
        # Only `serve` may invent the secret: gateways of a cluster must share one.
        secret, secret_path = resolve_jwt_secret(config, create=command == "serve")
    verifier: TokenVerifier | None = None
    if "gateway" in roles:
        try:  # built before the tree starts: bad key material is a configuration error
            verifier = build_verifier(config, hs256_secret=secret)
        except ValueError as error:
            key, sep, reason = str(error).partition(": ")
            raise ConfigError(key if sep else "jwt_algorithm", reason if sep else key) from None
    check_can_listen(listen_addresses(config, roles))
    trio.run(check_storage_ready, config)
    state = ServeState(config=config, verifier=verifier, redis_url=config.redis_url, roles=roles)
    configure_tracing(config)
    if secret_path is not None:  # said once the configuration is known to be good
        log.info(
            "JWT secret in %s; mint a token with `notifactor token --tenant T --sub U`",
            secret_path,
        )
    elif secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
        log.warning(
            "jwt_secret is %d bytes: HS256 wants at least %d (RFC 7518 §3.2); "
            "a short secret can be guessed, and whoever guesses it can mint tokens",
            len(secret.encode()),
            MIN_SECRET_BYTES,
            extra={"event": "weak_jwt_secret"},
        )
    tune_collector(config.runtime)
    tune_redis_client(config.runtime)
    try:
        return trio.run(partial(serve_until_signalled, state, freeze_when_started=True))
    finally:
        shutdown_tracing()


async def serve_until_signalled(state: ServeState, *, freeze_when_started: bool = False) -> int:
    """Run the serve tree; the first SIGINT/SIGTERM stops it gracefully.

    ``freeze_when_started`` (the commands, not in-process tests) freezes the
    start-up objects once the tree is up (``[runtime] gc_freeze_after_start``).
    """
    root = build_serve_tree(state)
    collector = register_supervision_metrics(root.statistics)
    with (
        _unregister_on_exit(collector),
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
    ):
        hurry = StopSignal()
        set_hurry_signal(hurry)  # inherited by every task of the tree
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal, signals, root, state.config.shutdown_grace_s, hurry)
            try:
                if freeze_when_started:
                    runtime = state.config.runtime
                    await root.run(
                        task_status=_OnStarted(partial(freeze_start_up_objects, runtime))
                    )
                else:
                    await root.run()
            except SupervisorGaveUp as exc:
                log.error("supervision tree gave up: %s", exc)
                return EXIT_FAILURE
            finally:
                nursery.cancel_scope.cancel()
    if hurry.requested:
        log.warning("stopped, not gracefully")
        return EXIT_FAILURE
    log.info("stopped")
    return EXIT_OK


@attrs.frozen
class _OnStarted:
    """A task status that runs ``callback`` when the task reports it has started."""

    callback: Callable[[], None]

    def started(self, value: object = None) -> None:
        self.callback()


@contextmanager
def _unregister_on_exit(collector: Collector) -> Iterator[None]:
    try:
        yield
    finally:
        REGISTRY.unregister(collector)


#: How long past the grace period a stop may take before it is hurried.
HARD_STOP_MARGIN_S = 5.0


class _Stoppable(Protocol):
    def request_stop(self) -> None: ...


async def stop_on_signal(
    signals: AsyncIterator[int],
    root: _Stoppable,
    grace_s: float,
    hurry: StopSignal,
) -> None:
    """The first signal stops ``root`` gracefully; a second one, or the graceful
    stop overrunning ``grace_s`` by :data:`HARD_STOP_MARGIN_S`, requests
    ``hurry`` (the process's hurry signal): whatever is still stopping is
    cancelled, so the process exits in bounded time.
    """
    async for signum in signals:
        log.info("received %s: stopping within %.0fs", signal.Signals(signum).name, grace_s)
        root.request_stop()
        break
    else:
        return
    reason = f"not stopped {grace_s + HARD_STOP_MARGIN_S:.0f}s after the signal"
    with trio.move_on_after(grace_s + HARD_STOP_MARGIN_S):
        async for signum in signals:
            reason = f"received {signal.Signals(signum).name} again"
            break
    log.warning("%s: cancelling what is still stopping", reason, extra={"event": "hard_stop"})
    hurry.request()


def build_serve_tree(state: ServeState) -> Supervisor:
    """The root supervisor of ``serve``, tuned by ``[supervision]``."""
    config = state.config
    children: list[ChildSpec] = []
    if "gateway" not in state.roles:
        # Without the REST listener, /metrics needs a port of its own.
        children.append(_metrics_spec(state))
    if config.redis_url is None:
        children.append(_embedded_redis_spec(state))
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


async def run_until_stopped(
    run: Callable[..., Awaitable[object]],
    on_ready: Callable[[Any], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Adapt a server task (``run(task_status=...)`` that reports a value) to a child spec.

    Runs ``run`` until the supervisor requests a stop, then cancels it so it
    shuts down gracefully; ``on_ready`` receives what ``run`` reported.
    """
    async with trio.open_nursery() as nursery:
        value = await nursery.start(run)
        on_ready(value)
        task_status.started()
        await current_stop_signal().wait()
        nursery.cancel_scope.cancel()


def _embedded_redis_spec(state: ServeState) -> ChildSpec:
    workdir = state.config.data_dir / "redis"

    def ready(url: str) -> None:
        state.redis_url = url
        log.info("embedded Redis-compatible server listening on %s", url)

    return ChildSpec(
        id="redis", start=partial(run_until_stopped, partial(run_embedded_redis, workdir), ready)
    )


def _metrics_spec(state: ServeState) -> ChildSpec:
    config = state.config

    def ready(port: int | None) -> None:
        if port is not None:
            log.info("metrics on http://%s:%d/metrics", config.observability.metrics_host, port)

    server = partial(
        run_metrics_server,
        config,
        supervision_check=partial(check_supervision, state),
        dependency_checks=lambda: state.dependency_checks,
        tree=partial(tree_snapshot, state),
    )
    return ChildSpec(id="metrics", start=partial(run_until_stopped, server, ready))


async def _run_services(
    state: ServeState,
    holder: list[Supervisor],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = state.config
    if state.redis_url is None:
        raise RuntimeError("no Redis URL: the embedded server did not start")
    partitions = config.supervision.partitions
    # Each partition consumer blocks on a connection of its own.
    pool = pool_size_for(blocking_readers=partitions, concurrent_pipelines=partitions)
    async with (
        open_redis(state.redis_url, max_connections=pool, client_name=config.instance_id) as redis,
        open_store(config) as store,
    ):

        async def ping_redis() -> None:
            await redis.ping()

        state.dependency_checks = {"redis": ping_redis, "storage": store.ping}
        try:
            await _run_service_tree(state, holder, redis, store, task_status=task_status)
        finally:
            state.dependency_checks = {}


async def _run_service_tree(
    state: ServeState,
    holder: list[Supervisor],
    redis: coredis.Redis[bytes],
    store: NotificationStore,
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    config = state.config
    writer_ref: ActorRef[WriterMessage] = ActorRef(
        "storage-writer", mailbox_size=config.supervision.writers.mailbox_size
    )
    writers = supervisor_from_config(
        "writers",
        config.supervision.writers,
        [actor_spec(writer_ref, lambda: storage_writer_for(config, store))],
    )
    writer = StorageWriterClient(writer_ref)
    subtrees = [writers.child_spec()]
    if isinstance(config.storage, SqliteTarget) and "dispatcher" in state.roles:
        # Cassandra expires rows by TTL; SQLite needs them deleted.
        subtrees.append(
            ChildSpec(id="retention-sweeper", start=partial(run_retention_sweeper, store))
        )
    if "dispatcher" in state.roles:
        # The WebSocket edge records `delivered` when it writes to a socket.
        settings = settings_from_config(config, mark_delivered_on_route=False)
        dispatcher = build_dispatcher(config, redis_deps(config, redis, writer, settings=settings))
        subtrees.append(dispatcher.child_spec())
    if "gateway" in state.roles:
        subtrees.append(_gateway_tree(state, redis, store, writer).child_spec())
    # rest_for_one: the dispatcher and the gateway stop before the writers
    # they flush through, and restart when the writers do.
    services = Supervisor(
        "services",
        subtrees,
        strategy="rest_for_one",
        intensity=config.supervision.root.intensity,
        period_s=config.supervision.root.period_s,
        shutdown_s=config.shutdown_grace_s,
    )
    holder[:] = [services]
    await services.run(task_status=task_status)


def _gateway_tree(
    state: ServeState,
    redis: coredis.Redis[bytes],
    store: NotificationStore,
    writer: StorageWriterClient,
) -> Supervisor:
    config = state.config
    if state.verifier is None:
        raise RuntimeError("the gateway needs its token verifier")
    audit_ref: ActorRef[AuditNote] = ActorRef("audit", mailbox_size=config.audit.mailbox_size)
    audit = actor_spec(audit_ref, partial(summarizer_for, writer, config.audit))
    settings = IngestSettings(
        idempotency_ttl_s=config.limits.idempotency_ttl_s,
        record_ttl_s=config.limits.accepted_record_ttl_s,
        max_stream_lag=config.limits.max_stream_lag,
        call_timeout_s=problems.REDIS_DEADLINE_S,
    )
    sender = PipelinedIngest(redis, RedisIngest(redis, settings))
    gateway = Gateway(
        config=config,
        verifier=state.verifier,
        ingest=InstrumentedIngest(sender),
        store=store,
        audit=AuditTrail(audit_ref),
        supervision_check=partial(check_supervision, state),
        supervision_snapshot=partial(tree_snapshot, state),
        dlq=ReplayService(
            RedisDeadLetterQueue(
                redis, append_slack_ms=append_slack_ms(config.dispatcher.dead_letter_timeout_s)
            ),
            store,
            partitions=config.supervision.partitions,
            retention_days=lambda tenant: config.tenant_policy(tenant).retention_days,
        ),
    )
    http = _http_spec(state, GatewayApp(gateway))
    ws = WsEdge(
        config,
        redis=redis,
        store=store,
        writer=writer,
        verifier=gateway.verifier,
        presence=RedisPresence(redis),
        on_listening=lambda port: log.info(
            "WebSocket listening on ws://%s:%d/ws", config.ws_host, port
        ),
    )
    # The audit actor and the ingest sender start first and stop last, after
    # the listeners drained.
    ingest_sender = ChildSpec(id="ingest-sender", start=sender.run)
    return supervisor_from_config(
        "gateway", config.supervision.gateway, [audit, ingest_sender, http, ws.child_spec()]
    )


def _http_spec(state: ServeState, app: GatewayApp) -> ChildSpec:
    def ready(port: int) -> None:
        state.http_port = port
        log.info("REST API listening on http://%s:%d", state.config.http_host, port)
        state.ready.set()

    return ChildSpec(
        id="http",
        start=partial(run_until_stopped, partial(run_http_server, app, state.config), ready),
    )


def _services_statistics(holder: list[Supervisor]) -> NodeStatistics:
    if holder:
        return holder[0].statistics()
    return NodeStatistics(id="services", kind="supervisor", state="starting")


def tree_snapshot(state: ServeState) -> NodeStatistics | None:
    """The live tree (``GET /v1/admin/tree``), None before it is built."""
    return None if state.root is None else state.root.statistics()


async def check_supervision(state: ServeState) -> None:
    """Raise when a node of the tree is not running (``/health``'s check).

    Pool members (sessions, consumers) are judged through their pool; see
    :func:`~notifactor.supervisors.statistics.not_running`.
    """
    if state.root is None:
        raise SupervisionUnhealthy("tree not built")
    problems = not_running(state.root.statistics())
    if problems:
        path, node_state = problems[0]
        raise SupervisionUnhealthy(f"{path} is {node_state}")


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
        session = await connect_configured_cassandra(config, target)
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
