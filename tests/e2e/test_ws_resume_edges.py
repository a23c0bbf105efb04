"""The opening hold, resume failures and odd input, through a real gateway, edge and Redis.

Each test pins a defect a review found (docs/websocket.md says what a client
may rely on): a hold that ends must not close a client that reads (1013); only
``resume`` ends the opening hold; a failed replay closes the session (1011)
instead of going live past the backlog; an out-of-range cursor is refused and
a session that crashes is closed with 1011; a long replay does not double a
redelivered id; a delivery-stream entry with a naive time is skipped.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio
from websockets.exceptions import ConnectionClosed

from notifactor.domain.cursor import CursorKind, Position, cursor_for, encode_cursor
from notifactor.domain.envelope import Envelope
from notifactor.domain.notification import InboxEntry
from notifactor.domain.routing import ROUTED_FIELD, RoutedMessage, encode_routed, routed_message
from notifactor.edge.settings import EdgeSettings
from notifactor.ports.notification_store import NotificationStore, StoreError
from tests.e2e.stores import Storage, open_test_store
from tests.e2e.ws_support import TEST_EDGE, Stack, WsClient, running_stack, token
from tests.integration.dispatcher_harness import make_envelope

pytestmark = pytest.mark.e2e

FROM_THE_START = encode_cursor(CursorKind.INBOX, Position(time_us=0, key=""))
SMALL_OUTBOX = EdgeSettings(
    heartbeat_s=TEST_EDGE.heartbeat_s,
    consumer_block_ms=TEST_EDGE.consumer_block_ms,
    close_timeout_s=TEST_EDGE.close_timeout_s,
    outbox_size=32,
)


def _names() -> tuple[str, str]:
    return f"t-{uuid.uuid4().hex[:8]}", f"test:{uuid.uuid4().hex[:12]}:"


async def _route(stack: Stack, messages: Iterable[Envelope | RoutedMessage]) -> None:
    """Append to this gateway's delivery stream in one transaction (one XREAD sees all)."""
    stream = stack.keys.gateway_stream(stack.config.instance_id)
    async with stack.redis.pipeline(transaction=True) as pipe:
        for item in messages:
            routed = routed_message(item, 1) if isinstance(item, Envelope) else item
            pipe.xadd(stream, {ROUTED_FIELD: encode_routed(routed)})


async def _post_batch(stack: Stack, tenant: str, user: str, count: int) -> list[str]:
    ids: list[str] = []
    headers = {"Authorization": f"Bearer {token(tenant, 'poster')}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.http_port}", timeout=30
    ) as http:
        for start in range(0, count, 500):
            body = {
                "notifications": [
                    {"tenant_id": tenant, "user_id": user, "channel": "alerts", "content": f"s{i}"}
                    for i in range(start, min(count, start + 500))
                ]
            }
            response = await http.post("/v1/notifications:batch", json=body, headers=headers)
            assert response.status_code == 202, response.text
            ids += [result["id"] for result in response.json()["results"]]
    return ids


async def _stored(stack: Stack, tenant: str, user: str, count: int) -> list[str]:
    """Post ``count`` notifications and wait until all are stored (pending: nobody online)."""
    ids = await _post_batch(stack, tenant, user, count)
    for ident in (ids[0], ids[-1]):
        await stack.wait_status(tenant, ident, "pending", within_s=60)
    return ids


async def _read_all(client: WsClient, quiet_s: float = 2.0) -> list[dict[str, Any]]:
    """Every frame until the connection closes or ``quiet_s`` pass without one."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(await client.recv_json(quiet_s))
    except (TimeoutError, ConnectionClosed):
        pass
    return frames


def _ids(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["id"] for frame in frames if frame["type"] == "notification"]


class _Pages:
    """A store whose resume pages after the first are slow, or fail once."""

    def __init__(self, inner: NotificationStore, *, delay_s: float = 0.0) -> None:
        self._inner = inner
        self._delay_s = delay_s
        self.failure: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        if cursor != FROM_THE_START:
            await trio.sleep(self._delay_s)
            failure, self.failure = self.failure, None
            if failure is not None:
                raise failure
        return await self._inner.inbox_after(tenant_id, user_id, cursor, limit)


# --- a hold that ends never closes a client that reads ------------------------


async def test_a_burst_during_the_opening_hold_reaches_a_reading_client(
    redis_url: str, tmp_path: Path
) -> None:
    """Defaults (outbox 256): the hold released 300 frames at once and closed with 1013."""
    assert TEST_EDGE.outbox_size == 256
    tenant, prefix = _names()
    async with running_stack(redis_url, tmp_path, prefix, dispatcher=False, http=False) as stack:
        client = await stack.connect(tenant, "bursty")  # sends nothing: the hold runs out
        envelopes = [make_envelope(tenant, "bursty", content=f"n{i}") for i in range(300)]
        await _route(stack, envelopes)
        frames = await _read_all(client)
        assert _ids(frames) == [e.id for e in envelopes]
        assert client.close_code is None
        await client.close()


async def test_live_frames_after_a_release_are_paced_not_closed(
    redis_url: str, tmp_path: Path
) -> None:
    """A burst during the hold, then a bigger one while the released frames are written."""
    tenant, prefix = _names()
    async with running_stack(
        redis_url, tmp_path, prefix, settings=SMALL_OUTBOX, dispatcher=False, http=False
    ) as stack:
        client = await stack.connect(tenant, "bursty")
        held = [make_envelope(tenant, "bursty", content=f"h{i}") for i in range(100)]
        later = [make_envelope(tenant, "bursty", content=f"l{i}") for i in range(400)]
        received: list[str] = []
        first = trio.Event()

        async def read() -> None:
            while len(received) < len(held) + len(later):
                frame = await client.recv_json()
                assert frame["type"] == "notification", frame
                received.append(frame["id"])
                first.set()

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await _route(stack, held)
                await first.wait()  # the hold has ended: the release is being written
                await _route(stack, later)
        assert received == [e.id for e in held + later]
        assert client.close_code is None
        await client.close()


async def test_a_resume_with_a_backlog_and_live_traffic_keeps_a_reading_client(
    redis_url: str, tmp_path: Path
) -> None:
    """The frames held during a replay were released into a full outbox: 1013."""
    tenant, prefix = _names()
    async with running_stack(redis_url, tmp_path, prefix, settings=SMALL_OUTBOX) as stack:
        stored = await _stored(stack, tenant, "resumer", 120)
        client = await stack.connect(tenant, "resumer")
        live = [make_envelope(tenant, "resumer", content=f"live{i}") for i in range(5)]
        await _route(stack, live)  # during the opening hold
        await client.send_json({"type": "resume", "since": FROM_THE_START})
        frames = await _read_all(client)
        assert client.close_code is None
        assert _ids(frames) == stored + [e.id for e in live]
        assert {"type": "resumed", "count": len(stored)} in frames
        await client.close()


# --- only resume ends the opening hold ---------------------------------------


async def test_subscribe_before_resume_keeps_the_replay_ahead_of_live_frames(
    redis_url: str, tmp_path: Path
) -> None:
    """docs/websocket.md: subscribe before resuming; the subscribe released live frames early."""
    tenant, prefix = _names()
    async with running_stack(redis_url, tmp_path, prefix) as stack:
        stored = await _stored(stack, tenant, "sub-resumer", 5)
        client = await stack.connect(tenant, "sub-resumer")
        live = make_envelope(tenant, "sub-resumer", content="live")
        await _route(stack, [live])
        await trio.sleep(0.2)  # within resume_grace_s: held
        await client.send_json({"type": "subscribe", "channels": ["alerts"]})
        assert await client.recv_json() == {"type": "subscribed", "channels": ["alerts"]}
        await client.send_json({"type": "resume", "since": FROM_THE_START})
        frames = await client.recv_until("resumed")
        assert _ids(frames) == stored
        assert frames[-1] == {"type": "resumed", "count": len(stored)}
        assert (await client.recv_json())["id"] == live.id
        await client.close()


# --- a failed replay ----------------------------------------------------------


async def test_a_failed_replay_closes_1011_and_the_next_resume_gets_the_rest(
    redis_url: str, tmp_path: Path
) -> None:
    """The session went live after resume_failed: the unreplayed backlog was skipped."""
    tenant, prefix = _names()
    async with open_test_store(tmp_path, None) as inner:
        store = _Pages(inner)
        async with running_stack(redis_url, tmp_path, prefix, store=store) as stack:  # type: ignore[arg-type]
            backlog = await _stored(stack, tenant, "u", 300)
            client = await stack.connect(tenant, "u")
            store.failure = StoreError("cassandra: ReadTimeout")  # on the second page
            await client.send_json({"type": "resume", "since": FROM_THE_START})
            frames = await client.recv_until("error")
            page = TEST_EDGE.replay_page
            assert _ids(frames) == backlog[:page]
            assert frames[-1]["code"] == "resume_failed"
            with pytest.raises(ConnectionClosed):
                await client.recv_json(5)
            assert client.close_code == 1011
            # The client resumes from the last notification it processed: nothing lost.
            again = await stack.connect(tenant, "u")
            await again.send_json({"type": "resume", "since": frames[-2]["cursor"]})
            replay = await again.recv_until("resumed", within_s=20)
            assert _ids(replay) == backlog[page:]
            await again.close()


# --- cursors out of range, crashes ---------------------------------------------


def _crafted(time_us: int) -> str:
    raw = msgspec.json.encode(["c1", "i", time_us, "x", ""])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("time_us", [2**63, -1, -(2**63) - 1])
async def test_a_cursor_out_of_range_is_refused_and_the_session_stays(
    redis_url: str, tmp_path: Path, storage: Storage, time_us: int
) -> None:
    """It reached storage (SQLite: OverflowError), crashed the session and closed it with 1000."""
    _, prefix = _names()
    async with running_stack(
        redis_url, tmp_path, prefix, storage=storage, dispatcher=False, http=False
    ) as stack:
        client = await stack.connect("t", "u")
        await client.send_json({"type": "resume", "since": _crafted(time_us)})
        frame = await client.recv_json(5)
        assert (frame["type"], frame["code"]) == ("error", "invalid_cursor")
        await client.send_json({"type": "ping"})
        assert await client.recv_json() == {"type": "pong"}
        await client.close()


async def test_a_session_that_crashes_is_closed_1011(redis_url: str, tmp_path: Path) -> None:
    """A crash closed the session with 1000, which tells the client all is well."""
    _, prefix = _names()
    async with open_test_store(tmp_path, None) as inner:
        store = _Pages(inner)
        async with running_stack(
            redis_url,
            tmp_path,
            prefix,
            store=store,  # type: ignore[arg-type]
            dispatcher=False,
            http=False,
        ) as stack:
            client = await stack.connect("t", "u")
            store.failure = RuntimeError("a bug")
            await client.send_json({"type": "resume", "since": _crafted(5)})
            with pytest.raises(ConnectionClosed):
                await client.recv_json(5)
            assert client.close_code == 1011
            assert client.connection.close_reason == "internal error"


# --- duplicates across the switch -----------------------------------------------


async def test_a_live_copy_during_a_long_replay_is_not_sent_twice(
    redis_url: str, tmp_path: Path
) -> None:
    """A replay longer than sent_window (512) released a redelivered id after ``resumed``."""
    tenant, prefix = _names()
    async with open_test_store(tmp_path, None) as inner:
        store = _Pages(inner, delay_s=0.3)
        async with running_stack(redis_url, tmp_path, prefix, store=store) as stack:  # type: ignore[arg-type]
            stored = await _stored(stack, tenant, "long", 700)
            client = await stack.connect(tenant, "long")
            await client.send_json({"type": "resume", "since": FROM_THE_START})
            first = await client.recv_json()
            assert first["id"] == stored[0]
            # A redelivery (retry, claim, DLQ replay) of the first one while the replay runs.
            view = await inner.get_notification(tenant, stored[0])
            assert view is not None
            n = view.notification
            again = RoutedMessage(
                id=n.id,
                tenant_id=tenant,
                user_id="long",
                channel=n.channel,
                content=n.content,
                priority=n.priority,
                metadata=dict(n.metadata),
                created_at=n.created_at,
                cursor=cursor_for(n),
                attempt=2,
                traceparent="",
            )
            await _route(stack, [again])
            frames = [first, *await _read_all(client, 3)]
            assert _ids(frames) == stored
            assert frames[-1] == {"type": "resumed", "count": len(stored)}
            await client.close()


# --- odd delivery-stream entries -----------------------------------------------


async def test_an_entry_with_a_naive_created_at_is_skipped(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It crashed the ws-delivery consumer again and again while its user's hold lasted."""
    tenant, prefix = _names()
    caplog.set_level(logging.WARNING)
    async with running_stack(redis_url, tmp_path, prefix, dispatcher=False, http=False) as stack:
        other = await stack.connect(tenant, "v")
        client = await stack.connect(tenant, "u")  # in its opening hold
        stream = stack.keys.gateway_stream(stack.config.instance_id)
        bad = json.loads(encode_routed(routed_message(make_envelope(tenant, "u"), 1)))
        bad["created_at"] = bad["created_at"].removesuffix("Z")  # no offset
        await stack.redis.xadd(stream, {ROUTED_FIELD: json.dumps(bad).encode()})
        good = [make_envelope(tenant, "v", content="after"), make_envelope(tenant, "u")]
        await _route(stack, good)
        assert (await other.recv_json(5))["id"] == good[0].id
        assert (await client.recv_json(5))["id"] == good[1].id  # not the bad one
        messages = [record.getMessage() for record in caplog.records]
        assert not [m for m in messages if "crashed" in m], messages
        assert [m for m in messages if "skipping delivery-stream entry" in m]
        await client.close()
        await other.close()
