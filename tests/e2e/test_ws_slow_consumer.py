"""A client that stops reading, under a steady load: it is closed, and nobody else waits for it.

The older e2e slow-client test (``test_ws_delivery``) routes one burst
straight into the gateway stream: the burst alone overflows the outbox in a
single fan-out, before the slow socket ever blocks, and the fast clients are
only measured before and after it. Here notifications for both users arrive
through the REST API at a steady rate, so the stalled client's socket really
fills (kernel buffers, then a blocked write, then the outbox) while another
user's session on the same gateway keeps receiving, measured every round.
The stalled client reads its first few notifications, then stops for good.
"""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import pytest
import trio
from prometheus_client import REGISTRY
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from notifactor.config.model import LimitsConfig
from notifactor.domain.cursor import CursorKind, Position, encode_cursor
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import InboxEntry
from notifactor.edge.settings import EdgeSettings
from tests.e2e.stores import Storage
from tests.e2e.ws_support import Stack, WsClient, running_stack, stack_config, token

pytestmark = pytest.mark.e2e

TENANT = "slow-t"
MIN_ROUNDS = 20  # rounds in all, at the least
ROUNDS_AFTER_CLOSE = 5  # the reader is still measured this many rounds after the close
MAX_ROUNDS = 400  # the stalled session must have been closed long before this
BIG = 60_000  # content bytes of each notification for the stalled user
BIG_PER_ROUND = 4
ROUND_PAUSE_S = 0.05
CLOSE_TIMEOUT_S = 1.0
OUTBOX = 16
STALL_AFTER = 3 * BIG_PER_ROUND  # notifications the stalled client reads before it stops
SETTINGS = EdgeSettings(
    heartbeat_s=60.0,  # the stalled client must be closed for its backlog, not its silence
    outbox_size=OUTBOX,
    consumer_block_ms=200,
    close_timeout_s=CLOSE_TIMEOUT_S,
)
# The pipeline takes ~10-20 ms here. If fan-out ever waited for the stalled
# socket, the reader would wait at least until that socket's write is given
# up, which takes close_timeout_s (1 s) at the soonest: 0.3 s is far above
# the normal latency and far below any coupling.
P95_BOUND_S = 0.3
FROM_THE_START = encode_cursor(CursorKind.INBOX, Position(time_us=0, key=""))


def _closes_1013() -> float:
    return REGISTRY.get_sample_value("websocket_closes_total", {"code": "1013"}) or 0.0


def _stalled_connection(url: str) -> ClientConnection:
    """A ``websockets`` client that will never read: a small TCP window, a one-frame queue.

    ``websockets`` reads the socket in a thread of its own; with ``max_queue=1``
    that thread stops reading once one frame waits for ``recv`` (never called).
    """
    target = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.connect((target.hostname, target.port))
    return connect(url, sock=sock, open_timeout=10, max_size=None, max_queue=1).__enter__()


def _drain(connection: ClientConnection, within_s: float) -> int | None:
    """Read whatever is left until the connection closes; the close code the client got."""
    deadline = time.monotonic() + within_s
    try:
        while True:
            connection.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as closed:
        return None if closed.rcvd is None else closed.rcvd.code
    except TimeoutError:
        raise AssertionError("the stalled client's connection was never closed") from None


def _recv_stamped(connection: ClientConnection) -> tuple[float, Any] | None:
    """The next frame and when it arrived, or None after a short wait."""
    try:
        raw = connection.recv(timeout=0.2)
    except TimeoutError:
        return None
    return time.monotonic(), raw


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@attrs.define
class _Load:
    """The steady load and what both clients saw of it."""

    http: httpx.AsyncClient
    reader: WsClient
    stalled: WsClient
    closes_before: float
    posted_at: dict[str, float] = attrs.Factory(dict)  # reader's ids -> when the POST returned
    reader_ids: list[str] = attrs.Factory(list)
    stalled_ids: list[str] = attrs.Factory(list)
    received: list[tuple[str, float]] = attrs.Factory(list)  # reader: (id, when it arrived)
    stalled_read: list[str] = attrs.Factory(list)
    stopped_reading_at: float = math.inf
    closed_in_round: int | None = None
    closed_seen_at: float = math.inf

    async def post(self, user: str, content: str) -> str:
        body = {"tenant_id": TENANT, "user_id": user, "channel": "alerts", "content": content}
        response = await self.http.post("/v1/notifications", json=body)
        assert response.status_code == 202, response.text
        ident: str = response.json()["id"]
        return ident

    async def run(self) -> None:
        """Rounds until the stalled session is closed and a few more have passed."""
        posts_done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_reader, posts_done)
            nursery.start_soon(self._read_stalled_then_stop)
            for n in range(MAX_ROUNDS):
                ident = await self.post("reader", f"r{n}")
                self.posted_at[ident] = time.monotonic()
                self.reader_ids.append(ident)
                for i in range(BIG_PER_ROUND):
                    self.stalled_ids.append(await self.post("stalled", f"{n}-{i}-" + "x" * BIG))
                if self.closed_in_round is None and _closes_1013() > self.closes_before:
                    self.closed_in_round, self.closed_seen_at = n, time.monotonic()
                if self.closed_in_round is not None and n >= max(
                    MIN_ROUNDS - 1, self.closed_in_round + ROUNDS_AFTER_CLOSE
                ):
                    break
                await trio.sleep(ROUND_PAUSE_S)
            posts_done.set()

    async def _read_reader(self, posts_done: trio.Event) -> None:
        with trio.fail_after(60):
            while not posts_done.is_set() or len(self.received) < len(self.reader_ids):
                got = await trio.to_thread.run_sync(_recv_stamped, self.reader.connection)
                if got is None:
                    continue
                stamp, raw = got
                frame = json.loads(raw)
                assert frame["type"] == "notification", frame
                self.received.append((frame["id"], stamp))

    async def _read_stalled_then_stop(self) -> None:
        """The stalled client reads its first notifications, then never again."""
        while len(self.stalled_read) < STALL_AFTER:
            frame = await self.stalled.recv_json(within_s=10)
            if frame["type"] == "notification":
                self.stalled_read.append(frame["id"])
        self.stopped_reading_at = time.monotonic()

    def latencies(self) -> list[float]:
        return [max(0.0, stamp - self.posted_at[ident]) for ident, stamp in self.received]


async def _inbox(s: Stack, user: str) -> list[InboxEntry]:
    entries: list[InboxEntry] = []
    while page := await s.store.inbox_after(
        TENANT, user, entries[-1].cursor if entries else None, 500
    ):
        entries += page
    return entries


async def _stored(s: Stack, user: str, count: int) -> list[InboxEntry]:
    """The user's stored inbox once it holds ``count`` notifications."""
    with trio.fail_after(10):  # the last round may still be on its way to storage
        while len(entries := await _inbox(s, user)) < count:  # noqa: ASYNC110
            await trio.sleep(0.05)
    return entries


async def test_a_stalled_client_is_closed_1013_while_another_user_keeps_low_latency(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    config = stack_config(tmp_path, limits=LimitsConfig(content_max_bytes=BIG + 1000))
    async with (
        running_stack(
            redis_url, tmp_path, redis_prefix, storage=storage, settings=SETTINGS, config=config
        ) as s,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{s.http_port}",
            headers={"Authorization": f"Bearer {token(TENANT, 'poster')}"},
            timeout=10,
        ) as http,
    ):
        reader = await s.connect(TENANT, "reader")
        stalled = WsClient(
            await trio.to_thread.run_sync(_stalled_connection, s.url_for(TENANT, "stalled"))
        )
        # A resume ends the opening hold (resume_grace_s) of both sessions: live
        # frames flow one by one from the start, not in one release.
        for client in (reader, stalled):
            await client.send_json({"type": "resume", "since": FROM_THE_START})
            assert (await client.recv_until("resumed"))[-1] == {"type": "resumed", "count": 0}
        load = _Load(http=http, reader=reader, stalled=stalled, closes_before=_closes_1013())
        await load.run()

        closed_in_round = load.closed_in_round
        assert closed_in_round is not None, f"not closed within {MAX_ROUNDS} rounds"
        # The server chose 1013, once: the stalled session and no other.
        assert _closes_1013() - load.closes_before == 1
        assert s.edge.registry.sessions_of(TENANT, "stalled") == []
        assert len(s.edge.registry.sessions_of(TENANT, "reader")) == 1
        # Closed because its outbox filled, not because one write blocked for
        # send_timeout_s (the other way to 1013): it took the outbox filling up,
        # plus close_timeout_s for the write in flight to be given up.
        assert load.closed_seen_at - load.stopped_reading_at < SETTINGS.send_timeout_s / 2

        # The reader got every one of its notifications, once, in order, and fast
        # during the whole run: before, while and after the other socket was stuck.
        assert [ident for ident, _ in load.received] == load.reader_ids
        latencies = load.latencies()
        assert _p95(latencies) < P95_BOUND_S, sorted(latencies)
        until_closed = latencies[: closed_in_round + 1]
        assert _p95(until_closed) < P95_BOUND_S, until_closed

        # The stalled client's connection ends. Its socket was stuck, so the close
        # frame may not get through (docs/websocket.md: it then sees 1006).
        code = await trio.to_thread.run_sync(_drain, stalled.connection, 10.0)
        assert code in (1013, None)

        # Nothing is lost for the stalled user: everything is stored ...
        stalled_ids = load.stalled_ids
        stored = await _stored(s, "stalled", len(stalled_ids))
        assert [entry.notification.id for entry in stored] == stalled_ids
        # ... it read its first notifications live (each frame written is recorded
        # `delivered`); then its socket stopped taking frames and the rest of
        # what it was sent stayed `pending` ...
        assert load.stalled_read == stalled_ids[:STALL_AFTER]
        written = [e.notification.id for e in stored if e.state is DeliveryState.DELIVERED]
        assert written == stalled_ids[: len(written)]
        assert STALL_AFTER <= len(written) < len(stalled_ids) - OUTBOX
        # ... and after reconnecting, a resume sends it all again, in order.
        again = await s.connect(TENANT, "stalled")
        await again.send_json({"type": "resume", "since": stored[0].cursor})
        replay = await again.recv_until("resumed", within_s=20)
        assert [frame["id"] for frame in replay[:-1]] == stalled_ids[1:]
        assert replay[-1] == {"type": "resumed", "count": len(stalled_ids) - 1}
        await again.close()
        await reader.close()
