"""Session and gateway lifecycle over real sockets: unsubscribe, SIGTERM, restart.

* ``unsubscribe`` end to end (SPEC §5, docs/websocket.md): the reply frame,
  live traffic of the dropped channel stops, what stays stored for a resume.
* A real ``notifactor serve`` process with open sessions receives SIGTERM:
  every session is closed with 1001 within the grace and the process exits 0.
* A gateway restarted with the same instance id forgets what an earlier run
  left in Redis (``reset_gateway``), and the janitor removes the delivery
  streams of dead gateways (``remove_dead_streams``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import attrs
import pytest
import trio
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from notifactor.adapters.redis_presence import RedisPresence
from notifactor.adapters.redis_ws_admission import ws_connections_key
from notifactor.config import Config
from notifactor.domain.routing import ROUTED_FIELD
from notifactor.edge.settings import EdgeSettings
from tests.e2e.stores import Storage
from tests.e2e.ws_support import (
    Stack,
    WsClient,
    raw_upgrade,
    read_http_head,
    running_stack,
    stack_config,
)

from .test_serve import ServeProcess, serve

__all__ = ["serve"]

pytestmark = pytest.mark.e2e

QUIET_S = 0.3  # how long "nothing arrives" is watched for


async def _nothing_more(client: WsClient) -> None:
    """No frame arrives for a while, and the session still answers (ping → pong next)."""
    with pytest.raises(TimeoutError):
        await client.recv_json(within_s=QUIET_S)
    await client.send_json({"type": "ping"})
    assert await client.recv_json() == {"type": "pong"}


# --- unsubscribe ---------------------------------------------------------------


async def test_unsubscribe_stops_live_traffic_of_that_channel_only(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    async with running_stack(redis_url, tmp_path, redis_prefix, storage=storage) as s:
        session = await s.connect("acme", "una")
        # A session that never subscribed receives everything: unsubscribe is refused.
        await session.send_json({"type": "unsubscribe", "channels": ["billing"]})
        refused = await session.recv_json()
        assert (refused["type"], refused["code"]) == ("error", "not_subscribed")

        await session.send_json({"type": "subscribe", "channels": ["alerts", "billing"]})
        assert await session.recv_json() == {
            "type": "subscribed",
            "channels": ["alerts", "billing"],
        }
        first = await s.post("acme", "una", channel="billing", content="before")
        first_frame = await session.recv_json()
        assert (first_frame["id"], first_frame["channel"]) == (first, "billing")

        await session.send_json({"type": "unsubscribe", "channels": ["billing"]})
        assert await session.recv_json() == {"type": "subscribed", "channels": ["alerts"]}
        # Same user, posted in this order: one partition, routed in this order. The
        # first frame to arrive is the alerts one: the billing one was not sent.
        dropped = await s.post("acme", "una", channel="billing", content="unsubscribed")
        kept = await s.post("acme", "una", channel="alerts", content="still subscribed")
        frame = await session.recv_json()
        assert (frame["id"], frame["channel"]) == (kept, "alerts")
        await _nothing_more(session)
        await s.wait_status("acme", kept, "delivered")
        # The dropped one was stored and routed, never written to a socket: it
        # stays pending (SPEC §4), there for a resume.
        await trio.sleep(QUIET_S)
        assert await s.status_of("acme", dropped) == "pending"

        # A resume respects the session's subscriptions: nothing for this one
        # (``kept`` was sent already, ``dropped`` is on a channel it left).
        await session.send_json({"type": "resume", "since": first_frame["cursor"]})
        assert await session.recv_json() == {"type": "resumed", "count": 0}

        # A session of the same user that never subscribed gets it on resume.
        other = await s.connect("acme", "una")
        await other.send_json({"type": "resume", "since": first_frame["cursor"]})
        replay = await other.recv_until("resumed")
        assert [(f["id"], f["channel"]) for f in replay[:-1]] == [
            (dropped, "billing"),
            (kept, "alerts"),
        ]
        assert replay[-1] == {"type": "resumed", "count": 2}
        await s.wait_status("acme", dropped, "delivered")

        # Unsubscribing from the last channel leaves a session that receives nothing.
        await session.send_json({"type": "unsubscribe", "channels": ["alerts"]})
        assert await session.recv_json() == {"type": "subscribed", "channels": []}
        last = await s.post("acme", "una", channel="alerts", content="nobody subscribed here")
        assert (await other.recv_json())["id"] == last  # the other session still gets it
        await _nothing_more(session)
        for client in (session, other):
            await client.close()


async def test_an_upgrade_finished_during_a_graceful_stop_is_refused_with_503(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    """A client mid-handshake when the gateway starts stopping gets a 503, not a
    session that the stop has already passed by (and would cut off at its deadline)."""
    async with running_stack(redis_url, tmp_path, redis_prefix, storage=storage) as s:
        alice = await s.connect("acme", "alice")
        assert s.edge.port is not None
        stream = await trio.open_tcp_stream("127.0.0.1", s.edge.port)
        # not finished: no blank line yet
        await stream.send_all(raw_upgrade(s.edge.port, "acme", "late", complete=False))
        s.edge_root.request_stop()
        with pytest.raises(ConnectionClosed):
            await alice.recv_json()
        assert alice.close_code == 1001  # the stop is under way
        await stream.send_all(b"\r\n")
        response = await read_http_head(stream)
        await stream.aclose()
        status_line = response.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 503"), response[:300]
        assert b"retry-after" in response.lower()


# --- SIGTERM on a real serve process ------------------------------------------


def _open_session(sockets: ExitStack, serve: ServeProcess, user: str) -> ClientConnection:
    url = f"ws://127.0.0.1:{serve.ws_port}/ws?token={serve.token('acme', user)}"
    socket = sockets.enter_context(connect(url, open_timeout=10))
    welcome = json.loads(socket.recv(timeout=10))
    assert (welcome["type"], welcome["user_id"]) == ("welcome", user)
    socket.send(json.dumps({"type": "ping"}))
    assert json.loads(socket.recv(timeout=10)) == {"type": "pong"}
    return socket


def _close_code_after(socket: ClientConnection, within_s: float) -> int | None:
    """Wait for the server's close; the code of the close frame the client received."""
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=within_s)
    return None if closed.value.rcvd is None else closed.value.rcvd.code


def test_sigterm_closes_every_session_with_1001_then_serve_exits_0(
    serve: ServeProcess, storage: Storage
) -> None:
    grace_s = attrs.fields(Config).shutdown_grace_s.default  # serve runs on its defaults
    assert isinstance(grace_s, float)
    with ExitStack() as opened:
        sockets = [_open_session(opened, serve, user) for user in ("term-a", "term-b")]
        started = time.monotonic()
        serve.process.send_signal(signal.SIGTERM)
        for socket in sockets:
            assert _close_code_after(socket, grace_s) == 1001
            assert socket.close_code == 1001
            assert time.monotonic() - started < grace_s
    try:
        code = serve.process.wait(timeout=grace_s - (time.monotonic() - started))
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still running {grace_s} s after SIGTERM:\n{serve.log_path.read_text()}")
    assert code == 0, serve.log_path.read_text()[-6000:]


# --- restart with the same instance id ----------------------------------------

TENANT = "rs"
STALE_MS = 3_000
RESTART_SETTINGS = EdgeSettings(
    heartbeat_s=5.0,
    consumer_block_ms=200,
    close_timeout_s=1.0,
    janitor_interval_s=0.1,
    stale_stream_ms=STALE_MS,
)


@attrs.define
class _Restart:
    """One gateway id across three runs on the same Redis prefix and storage."""

    redis_url: str
    tmp_path: Path
    prefix: str
    storage: Storage = None
    gateway: str = attrs.field(factory=lambda: f"gw-restart-{uuid.uuid4().hex[:8]}")
    before_cursor: str = ""
    in_flight: str = ""
    dead_old: str = attrs.field(factory=lambda: f"gw-old-{uuid.uuid4().hex[:6]}")
    dead_fresh: str = attrs.field(factory=lambda: f"gw-fresh-{uuid.uuid4().hex[:6]}")
    alive: str = attrs.field(factory=lambda: f"gw-alive-{uuid.uuid4().hex[:6]}")
    fresh_written: float = 0.0

    def config(self) -> Config:
        return stack_config(self.tmp_path, instance_id=self.gateway)

    def presence(self, s: Stack, user: str = "alice") -> str:
        return s.keys.presence(TENANT, user)

    async def first_run(self) -> None:
        """Alice connects and gets a notification; a graceful stop closes her
        session (1001) and takes this gateway out of Redis."""
        async with running_stack(
            self.redis_url, self.tmp_path, self.prefix, storage=self.storage, config=self.config()
        ) as s:
            keys, gateway = s.keys, self.gateway
            alice = await s.connect(TENANT, "alice")
            assert await s.redis.hgetall(self.presence(s)) == {gateway.encode(): b"1"}
            assert await s.redis.smembers(keys.gateway_users(gateway)) == {
                self.presence(s).encode()
            }
            assert await s.redis.exists([keys.gateway_alive(gateway)])
            before = await s.post(TENANT, "alice", content="first run")
            frame = await alice.recv_json()
            assert frame["id"] == before
            self.before_cursor = frame["cursor"]
            assert await s.redis.xlen(keys.gateway_stream(gateway)) == 0  # processed: deleted
            s.edge_root.request_stop()
            with pytest.raises(ConnectionClosed):
                await alice.recv_json()
            assert alice.close_code == 1001
            with trio.fail_after(10):
                while s.edge_root.statistics().state != "stopped":  # noqa: ASYNC110
                    await trio.sleep(0.02)
            assert await s.redis.hgetall(self.presence(s)) == {}
            assert not await s.redis.exists(
                [keys.gateway_alive(gateway), keys.gateway_users(gateway)]
            )
            assert await s.redis.zcard(ws_connections_key(keys, TENANT)) == 0

    async def killed_run(self) -> None:
        """What a run killed with alice and bob connected leaves behind.

        Presence points at the gateway and it still looks alive, so the
        dispatcher of another gateway routes a notification into its delivery
        stream, where nobody reads it. Streams of other gateways are added for
        the janitor: one long idle, one just written (both gateways gone), one
        of a gateway that is alive.
        """
        other = stack_config(self.tmp_path, instance_id=f"gw-other-{uuid.uuid4().hex[:8]}")
        async with running_stack(
            self.redis_url, self.tmp_path, self.prefix, storage=self.storage, config=other
        ) as s:
            keys, gateway = s.keys, self.gateway
            for user in ("alice", "bob"):
                await s.redis.hincrby(self.presence(s, user), gateway, 1)
                await s.redis.pexpire(self.presence(s, user), 30_000)
                await s.redis.sadd(keys.gateway_users(gateway), [self.presence(s, user)])
            await s.redis.set(keys.gateway_alive(gateway), "1", px=30_000)
            self.in_flight = await s.post(TENANT, "alice", content="routed to a dead gateway")
            with trio.fail_after(10):
                while await s.redis.xlen(keys.gateway_stream(gateway)) < 1:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            assert await s.status_of(TENANT, self.in_flight) == "pending"
            entry = {ROUTED_FIELD: b"{}"}
            await s.redis.xadd(keys.gateway_stream(self.dead_old), entry, identifier="1-1")
            await s.redis.xadd(keys.gateway_stream(self.dead_fresh), entry)
            self.fresh_written = trio.current_time()
            await s.redis.xadd(keys.gateway_stream(self.alive), entry, identifier="1-1")
            await s.redis.set(keys.gateway_alive(self.alive), "1", px=60_000)


async def test_restart_with_the_same_instance_id_resets_presence_and_its_stream(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    run = _Restart(redis_url, tmp_path, redis_prefix, storage)
    await run.first_run()
    await run.killed_run()
    gateway = run.gateway
    async with running_stack(
        redis_url,
        tmp_path,
        redis_prefix,
        storage=storage,
        config=run.config(),
        settings=RESTART_SETTINGS,
    ) as s:
        keys = s.keys
        # reset_gateway: the killed run's registrations are forgotten, its stream
        # (with the entry nobody read) is gone, and the gateway is alive again.
        assert await s.redis.hgetall(run.presence(s)) == {}
        assert await s.redis.hgetall(run.presence(s, "bob")) == {}
        assert not await s.redis.exists([keys.gateway_users(gateway)])
        assert await s.redis.exists([keys.gateway_alive(gateway)])
        assert await s.redis.xlen(keys.gateway_stream(gateway)) == 0

        alice = await s.connect(TENANT, "alice")
        await alice.send_json({"type": "ping"})  # answered during the opening hold
        assert await alice.recv_json() == {"type": "pong"}
        # One session, counted once: not on top of the killed run's count.
        assert await s.redis.hgetall(run.presence(s)) == {gateway.encode(): b"1"}
        after = await s.post(TENANT, "alice", content="after the restart")
        frame = await alice.recv_json()
        assert frame["id"] == after  # not the dropped stream entry first
        await _nothing_more(alice)  # and only once
        await s.wait_status(TENANT, after, "delivered")
        # The dropped entry's notification is stored, pending, and comes back on resume.
        assert await s.status_of(TENANT, run.in_flight) == "pending"
        await alice.send_json({"type": "resume", "since": run.before_cursor})
        replay = await alice.recv_until("resumed")
        assert [f["id"] for f in replay[:-1]] == [run.in_flight]
        assert replay[-1] == {"type": "resumed", "count": 1}
        await _nothing_more(alice)

        # The janitor removes the streams of gone gateways once idle for
        # stale_stream_ms; a live gateway's stream and this gateway's own stay.
        old, fresh = keys.gateway_stream(run.dead_old), keys.gateway_stream(run.dead_fresh)
        with trio.fail_after(5):
            while await s.redis.exists([old]):  # noqa: ASYNC110
                await trio.sleep(0.05)
        if trio.current_time() - run.fresh_written < STALE_MS / 1000 - 0.5:
            assert await s.redis.exists([fresh])
        with trio.fail_after(STALE_MS / 1000 + 5):
            while await s.redis.exists([fresh]):  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert await s.redis.exists([keys.gateway_stream(run.alive)])
        assert await s.redis.exists([keys.gateway_stream(gateway)])
        await alice.close()


async def test_presence_lost_in_redis_is_registered_again_by_the_heartbeat(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    """The registry loses this gateway's registrations (a TTL lapse, a Redis that
    lost data): the next heartbeat notices and registers its live users again,
    so their live notifications are routed to it again."""
    settings = attrs.evolve(RESTART_SETTINGS, presence_heartbeat_s=0.2)
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, settings=settings
    ) as s:
        alice = await s.connect(TENANT, "alice")
        await alice.send_json({"type": "subscribe", "channels": ["alerts"]})
        assert (await alice.recv_json())["type"] == "subscribed"
        gateway = s.config.instance_id
        presence = s.keys.presence(TENANT, "alice")
        assert gateway.encode() in await s.redis.hkeys(presence)
        # Lost: the hash and the gateway's set of registrations are gone.
        await s.redis.delete([presence, s.keys.gateway_users(gateway)])
        with trio.fail_after(5):
            while gateway.encode() not in await s.redis.hkeys(presence):  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert await s.redis.hget(presence, gateway) == b"1"
        assert presence.encode() in await s.redis.smembers(s.keys.gateway_users(gateway))
        ident = await s.post(TENANT, "alice", content="after the loss")
        frame = await alice.recv_json(within_s=5)
        assert (frame["type"], frame["id"]) == ("notification", ident)
        await alice.close()


async def test_presence_counts_lost_in_redis_are_restored_even_after_a_new_session(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    """Redis loses a user's registrations and a new session of theirs re-creates the key
    with a count of 1: the heartbeat compares session counts, not just users, and
    restores the rest, so closing one session does not hide the others from routing."""
    settings = attrs.evolve(RESTART_SETTINGS, presence_heartbeat_s=0.2)
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, settings=settings
    ) as s:
        gateway = s.config.instance_id
        presence = s.keys.presence(TENANT, "alice")
        tabs = [await s.connect(TENANT, "alice") for _ in range(2)]
        with trio.fail_after(5):
            while await s.redis.hget(presence, gateway) != b"2":  # noqa: ASYNC110
                await trio.sleep(0.05)
        await s.redis.delete([presence, s.keys.gateway_users(gateway)])
        tabs.append(await s.connect(TENANT, "alice"))  # registers: count 1 of 3
        with trio.fail_after(5):
            while await s.redis.hget(presence, gateway) != b"3":  # noqa: ASYNC110
                await trio.sleep(0.05)
        await tabs.pop().close()
        with trio.fail_after(5):
            while await s.redis.hget(presence, gateway) != b"2":  # noqa: ASYNC110
                await trio.sleep(0.05)
        ident = await s.post(TENANT, "alice", content="still routed")
        for tab in tabs:
            while (frame := await tab.recv_json(within_s=5))["type"] != "notification":
                pass
            assert frame["id"] == ident
            await tab.close()


async def test_a_failed_unregister_is_settled_by_the_heartbeat(
    redis_url: str,
    tmp_path: Path,
    redis_prefix: str,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session's unregister fails (Redis unreachable for a moment): the user's
    count would stay one too high for as long as the gateway lives, and the
    dispatcher would keep routing to it. The heartbeat writes the exact count."""
    settings = attrs.evolve(RESTART_SETTINGS, presence_heartbeat_s=0.2)
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, settings=settings
    ) as s:
        gateway = s.config.instance_id
        presence = s.keys.presence(TENANT, "alice")
        tabs = [await s.connect(TENANT, "alice") for _ in range(2)]
        with trio.fail_after(5):
            while await s.redis.hget(presence, gateway) != b"2":  # noqa: ASYNC110
                await trio.sleep(0.05)

        async def unreachable(self: object, tenant_id: str, user_id: str, gw: str) -> None:
            raise ConnectionError("registry unreachable")

        monkeypatch.setattr(RedisPresence, "unregister", unreachable)
        await tabs.pop().close()
        with trio.fail_after(5):
            while await s.redis.hget(presence, gateway) != b"1":  # noqa: ASYNC110
                await trio.sleep(0.05)
        ident = await s.post(TENANT, "alice", content="still routed")
        while (frame := await tabs[0].recv_json(within_s=5))["type"] != "notification":
            pass
        assert frame["id"] == ident
        await tabs.pop().close()
        with trio.fail_after(5):
            while await s.redis.hget(presence, gateway) is not None:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert presence.encode() not in await s.redis.smembers(s.keys.gateway_users(gateway))
