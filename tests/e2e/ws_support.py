"""A whole notifactor in one test process, and a real WebSocket client.

``running_stack`` starts, on the real test Redis (keys under the test's own
prefix) and a real store: the storage writer, the dispatcher, the REST
gateway (hypercorn) and the WebSocket edge, each on a free port. ``WsClient``
is the ``websockets`` sync client driven from worker threads, so the sockets
are as real as a user's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import coredis
import httpx
import trio
from websockets.sync.client import ClientConnection, connect

from notifactor.actors import ActorRef, run_actor
from notifactor.actors.audit_trail import running_audit_trail
from notifactor.actors.storage_writer import (
    StorageWriter,
    StorageWriterClient,
    StorageWriterConfig,
    WriterMessage,
    kind_only,
)
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.redis_presence import RedisPresence
from notifactor.auth.tokens import DEFAULT_SCOPES, mint_token
from notifactor.auth.verify import build_verifier
from notifactor.config import Config, TenantPolicy
from notifactor.dispatcher.runner import build_dispatcher, redis_deps
from notifactor.dispatcher.settings import DispatcherSettings
from notifactor.edge.runner import WsEdge
from notifactor.edge.settings import EdgeSettings
from notifactor.gateway.app import GatewayApp
from notifactor.gateway.context import Gateway
from notifactor.gateway.server import run_http_server
from notifactor.ports.notification_store import NotificationStore
from notifactor.supervisors import ChildSpec, SupervisionConfig, Supervisor
from tests.e2e.stores import Storage, open_test_store

SECRET = "ws-e2e-secret-" + "s" * 40
GENEROUS = TenantPolicy(rate_per_s=100_000, burst=100_000, daily_quota=0)
FAST_DISPATCH = DispatcherSettings(
    read_count=64,
    block_ms=100,
    claim_idle_ms=3_000,
    claim_interval_s=0.5,
    attempt_timeout_s=2.0,
    maintenance_interval_s=1.0,
    retry_poll_s=0.05,
    mark_delivered_on_route=False,
)
TEST_EDGE = EdgeSettings(heartbeat_s=5.0, consumer_block_ms=200, close_timeout_s=1.0)


def token(tenant_id: str, subject: str, *, ttl_s: int = 3600, secret: str = SECRET) -> str:
    return mint_token(
        secret=secret,
        tenant_id=tenant_id,
        subject=subject,
        scopes=DEFAULT_SCOPES,
        ttl_s=ttl_s,
        now=int(time.time()),
    )


@attrs.define
class Stack:
    config: Config
    redis: coredis.Redis[bytes]
    store: NotificationStore
    keys: RedisKeys
    edge: WsEdge
    http_port: int | None
    writer: StorageWriterClient
    edge_root: Supervisor

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.edge.port}/ws"

    def url_for(self, tenant_id: str, user_id: str) -> str:
        return f"{self.ws_url}?token={token(tenant_id, user_id)}"

    async def connect(self, tenant_id: str, user_id: str, **kwargs: Any) -> WsClient:
        client = await WsClient.open(self.url_for(tenant_id, user_id), **kwargs)
        welcome = await client.recv_json()
        assert welcome["type"] == "welcome", welcome
        client.welcome = welcome
        return client

    async def post(self, tenant_id: str, user_id: str, **fields: Any) -> str:
        body = {"tenant_id": tenant_id, "user_id": user_id, "channel": "alerts", "content": "hi"}
        body.update(fields)
        headers = {"Authorization": f"Bearer {token(tenant_id, 'poster')}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.http_port}") as http:
            response = await http.post("/v1/notifications", json=body, headers=headers)
        assert response.status_code == 202, response.text
        ident: str = response.json()["id"]
        return ident

    async def status_of(self, tenant_id: str, ident: str) -> str | None:
        view = await self.store.get_notification(tenant_id, ident)
        return None if view is None else view.status.value

    async def wait_status(
        self, tenant_id: str, ident: str, want: str, within_s: float = 10
    ) -> None:
        # Storage is another system: polling it is the only way to observe it.
        with trio.fail_after(within_s):
            while await self.status_of(tenant_id, ident) != want:  # noqa: ASYNC110
                await trio.sleep(0.02)


class WsClient:
    """A ``websockets`` sync client used from Trio through worker threads."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> WsClient:
        connection = await trio.to_thread.run_sync(
            lambda: connect(url, open_timeout=10, max_size=None, **kwargs).__enter__()
        )
        return cls(connection)

    async def send_json(self, value: Any) -> None:
        await trio.to_thread.run_sync(self.connection.send, json.dumps(value))

    async def send_raw(self, value: str | bytes) -> None:
        await trio.to_thread.run_sync(self.connection.send, value)

    async def recv_json(self, within_s: float = 10.0) -> dict[str, Any]:
        raw = await trio.to_thread.run_sync(lambda: self.connection.recv(timeout=within_s))
        value: dict[str, Any] = json.loads(raw)
        return value

    async def recv_until(self, kind: str, within_s: float = 10.0) -> list[dict[str, Any]]:
        """Frames up to and including the first of type ``kind``."""
        frames: list[dict[str, Any]] = []
        while True:
            frame = await self.recv_json(within_s)
            frames.append(frame)
            if frame["type"] == kind:
                return frames

    async def close(self) -> None:
        await trio.to_thread.run_sync(self.connection.close)

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code


def raw_upgrade(port: int, tenant_id: str, user: str, *, complete: bool = True) -> bytes:
    """A WebSocket upgrade request as a client sends it (``complete=False``: no blank line yet)."""
    return (
        f"GET /ws?token={token(tenant_id, user)} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + ("\r\n" if complete else "")
    ).encode()


async def read_http_head(stream: trio.SocketStream, within_s: float = 5) -> bytes:
    """What the server answers an upgrade with, up to the end of its head (or EOF)."""
    response = b""
    with trio.fail_after(within_s):
        while b"\r\n\r\n" not in response:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            response += chunk
    return response


def stack_config(tmp_path: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "http_port": 0,
        "ws_port": 0,
        "data_dir": tmp_path,
        "shutdown_grace_s": 3.0,
        "instance_id": f"gw-{uuid.uuid4().hex[:10]}",
        "tenants": {"default": GENEROUS},
        "supervision": SupervisionConfig(partitions=4),
    }
    values.update(overrides)
    return Config(**values)


@asynccontextmanager
async def open_writer(store: NotificationStore) -> AsyncIterator[StorageWriterClient]:
    ref: ActorRef[WriterMessage] = ActorRef("writer", mailbox_size=4096)
    async with trio.open_nursery() as nursery:
        config = StorageWriterConfig(flush_timeout_s=5.0)
        await nursery.start(
            run_actor, ref, lambda: StorageWriter(store, config, partition_key=kind_only)
        )
        yield StorageWriterClient(ref)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_stack(
    redis_url: str,
    tmp_path: Path,
    prefix: str,
    *,
    settings: EdgeSettings = TEST_EDGE,
    config: Config | None = None,
    store: NotificationStore | None = None,
    dispatcher: bool = True,
    http: bool = True,
    tenants: Mapping[str, TenantPolicy] | None = None,
    storage: Storage = None,
) -> AsyncIterator[Stack]:
    """Writer, dispatcher, REST gateway and WebSocket edge on real Redis and storage.

    The store is ``store`` if given, else the one ``storage`` names (SQLite
    under ``tmp_path`` for None, or a Cassandra keyspace).
    """
    if store is None:
        async with (
            open_test_store(tmp_path, storage) as opened,
            running_stack(
                redis_url,
                tmp_path,
                prefix,
                settings=settings,
                config=config,
                store=opened,
                dispatcher=dispatcher,
                http=http,
                tenants=tenants,
            ) as stack,
        ):
            yield stack
        return
    config = config or stack_config(tmp_path, tenants={"default": GENEROUS, **(tenants or {})})
    keys = RedisKeys(prefix=prefix)
    async with (
        open_redis(redis_url, max_connections=64) as redis,
        open_writer(store) as writer,
        running_audit_trail(writer, config.audit) as audit,
    ):
        presence = RedisPresence(redis, keys=keys)
        verifier = build_verifier(config, hs256_secret=SECRET)
        edge = WsEdge(
            config,
            redis=redis,
            store=store,
            writer=writer,
            verifier=verifier,
            presence=presence,
            settings=settings,
            keys=keys,
        )
        edge_root = Supervisor("test-edge-root", [ChildSpec(id="ws", start=edge.run)])
        async with trio.open_nursery() as nursery:
            await nursery.start(edge_root.run)
            if dispatcher:
                deps = redis_deps(config, redis, writer, settings=FAST_DISPATCH, keys=keys)
                await nursery.start(build_dispatcher(config, deps).run)
            http_port: int | None = None
            if http:
                gateway = Gateway(
                    config=config,
                    verifier=verifier,
                    ingest=RedisIngest(redis, IngestSettings(stream_prefix=keys.stream(0)[:-1])),
                    store=store,
                    audit=audit,
                )
                http_port = await nursery.start(run_http_server, GatewayApp(gateway), config)
            yield Stack(
                config=config,
                redis=redis,
                store=store,
                keys=keys,
                edge=edge,
                http_port=http_port,
                writer=writer,
                edge_root=edge_root,
            )
            nursery.cancel_scope.cancel()
