"""The WebSocket edge over real sockets: handshake, frames, close codes (SPEC §5)."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
import trio
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from notifactor.adapters.redis_presence import RedisPresence
from notifactor.config import TenantPolicy
from notifactor.config.model import LimitsConfig
from notifactor.edge.settings import EdgeSettings
from tests.e2e.stores import Storage
from tests.e2e.ws_support import GENEROUS, WsClient, running_stack, stack_config, token

pytestmark = pytest.mark.e2e


async def _refused(url: str, **kwargs: Any) -> InvalidStatus:
    def attempt() -> InvalidStatus:
        try:
            connect(url, open_timeout=5, **kwargs).close()
        except InvalidStatus as refused:
            return refused
        raise AssertionError("the upgrade was accepted")

    return await trio.to_thread.run_sync(attempt)


async def test_handshake_refusals_and_garbage(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, dispatcher=False, http=False
    ) as s:
        port = s.edge.port or 0
        bad = await _refused(f"{s.ws_url}?token=not-a-jwt")
        assert bad.response.status_code == 401
        assert bad.response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert json.loads(bad.response.body)["status"] == 401
        assert (await _refused(s.ws_url)).response.status_code == 401
        wrong_key = token("t", "u", secret="x" * 40)
        header = await _refused(
            s.ws_url, additional_headers={"Authorization": f"Bearer {wrong_key}"}
        )
        assert header.response.status_code == 401
        expired = await _refused(f"{s.ws_url}?token={token('t', 'u', ttl_s=-120)}")
        assert expired.response.status_code == 401
        other = await _refused(f"ws://127.0.0.1:{port}/other?token={token('t', 'u')}")
        assert other.response.status_code == 404

        # Garbage, half handshakes and abrupt peers never take the listener down.
        for junk in (
            b"\x00\xff" * 500,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
            b"GET /ws HTTP/1.1\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /ws?token=x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nEXTRA",
            b"",
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            if junk:
                await stream.send_all(junk)
            await stream.aclose()
        with trio.fail_after(10):
            header_client = await WsClient.open(
                s.ws_url, additional_headers={"Authorization": f"Bearer {token('t', 'u')}"}
            )
            assert (await header_client.recv_json())["type"] == "welcome"
            await header_client.close()
            client = await s.connect("t", "u")
            await client.close()


async def test_frames_and_errors_keep_the_session_open(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, dispatcher=False, http=False
    ) as s:
        client = await s.connect("tenant-a", "user-1")
        assert client.welcome["tenant_id"] == "tenant-a"
        assert client.welcome["user_id"] == "user-1"
        assert client.welcome["heartbeat_s"] == 5
        assert client.welcome["session_id"]
        for raw, code in [
            ("not json", "invalid_json"),
            ("[1]", "invalid_frame"),
            ('{"type":"jump"}', "unknown_type"),
            ('{"type":"subscribe","channels":[""]}', "invalid_field"),
            ('{"type":"resume","since":"zzz"}', "invalid_cursor"),
        ]:
            await client.send_raw(raw)
            frame = await client.recv_json()
            assert frame["type"] == "error"
            assert frame["code"] == code
            assert frame["message"]
        await client.send_raw(b"\x01\x02")
        assert (await client.recv_json())["code"] == "invalid_frame"
        await client.send_json({"type": "subscribe", "channels": ["alerts"]})
        assert await client.recv_json() == {"type": "subscribed", "channels": ["alerts"]}
        await client.send_json({"type": "ping"})
        assert await client.recv_json() == {"type": "pong"}
        await client.close()


async def test_oversized_frame_closes_1009(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    config = stack_config(tmp_path, limits=LimitsConfig(ws_max_message_bytes=1024))
    async with running_stack(
        redis_url,
        tmp_path,
        redis_prefix,
        storage=storage,
        config=config,
        dispatcher=False,
        http=False,
    ) as s:
        client = await s.connect("t", "u")
        await client.send_raw("x" * 2048)
        with pytest.raises(ConnectionClosed):
            await client.recv_json()
        assert client.close_code == 1009
        # The limit is per frame: a fresh session works.
        again = await s.connect("t", "u")
        await again.send_json({"type": "ping"})
        assert await again.recv_json() == {"type": "pong"}
        await again.close()


async def test_tenant_connection_limit_refuses_with_429(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    limited = TenantPolicy(rate_per_s=1000, burst=1000, daily_quota=0, max_ws_connections=2)
    async with running_stack(
        redis_url,
        tmp_path,
        redis_prefix,
        storage=storage,
        dispatcher=False,
        http=False,
        tenants={"small": limited},
    ) as s:
        first, second = await s.connect("small", "a"), await s.connect("small", "b")
        refused = await _refused(s.url_for("small", "c"))
        assert refused.response.status_code == 429
        assert refused.response.headers["Retry-After"]
        other = await s.connect("big", "a")  # other tenants are not affected
        await first.close()
        with trio.fail_after(5):
            while True:  # the slot frees once the server has seen the close
                try:
                    third = await s.connect("small", "c")
                    break
                except InvalidStatus:
                    await trio.sleep(0.05)
        for client in (second, third, other):
            await client.close()


async def test_shutdown_closes_every_session_with_1001(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, dispatcher=False, http=False
    ) as s:
        clients = [await s.connect("t", f"u{i}") for i in range(5)]
        started = trio.current_time()
        s.edge_root.request_stop()
        for client in clients:
            with pytest.raises(ConnectionClosed):
                await client.recv_json(within_s=10)
            assert client.close_code == 1001
        assert trio.current_time() - started < s.config.shutdown_grace_s
        # The sessions leave their registrations to the edge, which drops
        # the whole gateway's in one call once they are closed.
        with trio.fail_after(5):
            for i in range(5):
                while await s.redis.hkeys(s.keys.presence("t", f"u{i}")):  # noqa: ASYNC110
                    await trio.sleep(0.02)


async def test_silent_client_is_closed_after_two_heartbeats(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    settings = EdgeSettings(heartbeat_s=0.4, consumer_block_ms=200, close_timeout_s=1)
    async with running_stack(
        redis_url,
        tmp_path,
        redis_prefix,
        storage=storage,
        settings=settings,
        dispatcher=False,
        http=False,
    ) as s:
        # A well-behaved client (answers pings) stays; a raw one that never answers is closed.
        polite = await s.connect("t", "polite")
        started = trio.current_time()
        code = await trio.to_thread.run_sync(_silent_client, s.edge.port or 0, token("t", "silent"))
        elapsed = trio.current_time() - started
        assert code == 1008
        assert 0.8 <= elapsed <= 3.0
        await polite.send_json({"type": "ping"})
        assert (await polite.recv_json())["type"] == "pong"
        await polite.close()


def _silent_client(port: int, jwt: str) -> int | None:
    """Upgrade by hand, then never answer; returns the close code the server sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /ws?token={jwt} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            _, sep, rest = data.partition(b"\r\n\r\n")
            if not sep:
                continue
            code = _close_code(rest)
            if code is not None:
                return code
    return None


def _close_code(frames: bytes) -> int | None:
    while len(frames) >= 2:
        opcode, length = frames[0] & 0x0F, frames[1] & 0x7F
        offset = 2
        if length == 126:
            length, offset = struct.unpack("!H", frames[2:4])[0], 4
        elif length == 127:
            length, offset = struct.unpack("!Q", frames[2:10])[0], 10
        payload = frames[offset : offset + length]
        if len(payload) < length:
            return None
        if opcode == 0x8:
            return int(struct.unpack("!H", payload[:2])[0])
        frames = frames[offset + length :]
    return None


_ = GENEROUS


async def test_a_session_that_cannot_start_is_closed_1013(
    redis_url: str,
    tmp_path: Path,
    redis_prefix: str,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The presence registry is unavailable: no session, a 1013 close (transient), the
    listener lives on. A bug in the registration is 1011 (test_ws_presence_stall.py)."""
    failing = {"on": True}
    real_register = RedisPresence.register

    async def register(self: RedisPresence, tenant_id: str, user_id: str, gateway: str) -> None:
        if failing["on"]:
            raise ConnectionError("presence registry unavailable (injected)")
        await real_register(self, tenant_id, user_id, gateway)

    monkeypatch.setattr(RedisPresence, "register", register)
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, dispatcher=False, http=False
    ) as s:
        client = await WsClient.open(s.url_for("acme", "alice"))
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv_json(within_s=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        failing["on"] = False
        healthy = await s.connect("acme", "alice")  # the listener is still serving
        assert healthy.welcome["user_id"] == "alice"
        await healthy.close()
