"""A session that stayed open while its presence was lost gets what was routed meanwhile.

When Redis loses a gateway's presence registrations (an outage longer than
the presence TTL, a restart without persistence, a failover), notifications
for the users of that gateway are routed to nobody and stay ``pending``.
The gateway's next presence check registers its users again and then sends
their open sessions what was stored meanwhile and never written to a socket;
the sessions drop what they already have. The check runs at once when the
delivery stream reader gets Redis back, not a whole heartbeat later.

Here the registration is removed by hand (as if it had expired), and the
heartbeat is held until the dispatcher has routed the notification to
nobody, so the test does not depend on which comes first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from notifactor.adapters.redis_client import UNAVAILABLE
from notifactor.adapters.redis_dispatch import DEFAULT_GROUP
from notifactor.edge.delivery_consumer import DeliveryConsumer
from tests.e2e.ws_support import TEST_EDGE, Stack, WsClient, running_stack

pytestmark = pytest.mark.e2e

FAST_PRESENCE = attrs.evolve(TEST_EDGE, presence_heartbeat_s=0.2)


class HeldHeartbeats:
    """Holds the gateway's presence heartbeats until :meth:`release`."""

    def __init__(self, s: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
        presence = s.edge.context.presence
        self._real: Callable[[str], Awaitable[None]] = presence.heartbeat
        self.reached = trio.Event()
        self._released = trio.Event()
        monkeypatch.setattr(presence, "heartbeat", self._heartbeat)

    async def _heartbeat(self, gateway_id: str) -> None:
        self.reached.set()
        await self._released.wait()
        await self._real(gateway_id)

    def release(self) -> None:
        self._released.set()


async def _held_heartbeats(s: Stack, monkeypatch: pytest.MonkeyPatch) -> HeldHeartbeats:
    """The gateway's next presence check, held where it refreshes the registrations."""
    held = HeldHeartbeats(s, monkeypatch)
    with trio.fail_after(5):
        await held.reached.wait()
    return held


async def _close_with_failed_unregister(
    s: Stack, monkeypatch: pytest.MonkeyPatch, client: WsClient, user_id: str
) -> None:
    """Close ``client`` while Redis refuses its unregister: the user's count becomes unsure."""
    presence = s.edge.context.presence
    left = len(s.edge.registry.sessions_of("acme", user_id)) - 1

    async def unreachable(*_args: Any) -> None:
        raise UNAVAILABLE[0]("Redis is away (injected)")

    real_unregister = presence.unregister
    monkeypatch.setattr(presence, "unregister", unreachable)
    await client.close()
    with trio.fail_after(5):
        while len(s.edge.registry.sessions_of("acme", user_id)) != left:  # noqa: ASYNC110
            await trio.sleep(0.02)
    monkeypatch.setattr(presence, "unregister", real_unregister)


async def _dispatched(s: Stack) -> None:
    """Wait until the dispatcher has read and acknowledged every accepted notification."""
    with trio.fail_after(10):
        while True:
            done = True
            for partition in range(s.config.supervision.partitions):
                groups: Any = await s.redis.xinfo_groups(s.keys.stream(partition))
                for group in groups:
                    if group[b"name"] == DEFAULT_GROUP.encode():
                        done &= group[b"pending"] == 0 and group.get(b"lag") == 0
            if done:
                return
            await trio.sleep(0.02)


async def _lose_presence(s: Stack, tenant_id: str, user_id: str) -> None:
    """Remove the user's registration, as when its TTL lapsed while Redis was away."""
    assert await s.redis.delete([s.keys.presence(tenant_id, user_id)]) == 1


async def _notifications_until_pong(client: WsClient) -> list[str]:
    """Ids of the notification frames that come before the answer to a ping."""
    await client.send_json({"type": "ping"})
    frames = await client.recv_until("pong", within_s=5)
    return [frame["id"] for frame in frames if frame["type"] == "notification"]


async def _routed_to_nobody(s: Stack, tenant_id: str, user_id: str) -> str:
    """Post one notification and wait until the dispatcher has found no presence for it."""
    ident = await s.post(tenant_id, user_id, content="while presence was lost")
    await _dispatched(s)
    assert await s.status_of(tenant_id, ident) == "pending"
    return ident


async def test_a_reassert_sends_the_open_session_what_was_routed_while_presence_was_lost(
    redis_url: str,
    tmp_path: Path,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notifactor.edge")
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=FAST_PRESENCE) as s:
        alice = await s.connect("acme", "alice")
        held = await _held_heartbeats(s, monkeypatch)
        await _lose_presence(s, "acme", "alice")
        missed = await _routed_to_nobody(s, "acme", "alice")

        held.release()  # the heartbeat finds the registration gone and reasserts
        frame = await alice.recv_json(within_s=5)
        assert frame["type"] == "notification"
        assert frame["id"] == missed
        assert frame["content"] == "while presence was lost"
        assert frame["cursor"]
        await s.wait_status("acme", missed, "delivered")

        await trio.sleep(3 * FAST_PRESENCE.presence_heartbeat_s)  # later heartbeats
        assert await _notifications_until_pong(alice) == []  # exactly once
        live = await s.post("acme", "alice", content="live again")
        assert (await alice.recv_json(within_s=5))["id"] == live
        await alice.close()

    reasserts = [r for r in caplog.records if getattr(r, "event", None) == "presence_reasserted"]
    assert reasserts
    catch_ups = [r for r in caplog.records if getattr(r, "event", None) == "presence_catch_up"]
    assert len(catch_ups) == 1, [r.getMessage() for r in catch_ups]
    assert catch_ups[0].levelno == logging.INFO
    assert "1 notifications" in catch_ups[0].getMessage()
    assert "1 users" in catch_ups[0].getMessage()


async def test_the_catch_up_does_not_send_again_what_the_session_already_has(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=FAST_PRESENCE) as s:
        alice = await s.connect("acme", "alice")
        other_channel = await s.connect("acme", "alice")
        await other_channel.send_json({"type": "subscribe", "channels": ["billing"]})
        assert (await other_channel.recv_json())["type"] == "subscribed"

        # Sent to the socket, but its ``delivered`` never reaches storage: it
        # stays pending there, as one whose record is still on its way.
        async def not_recorded(*_args: Any, **_kwargs: Any) -> None:
            return None

        monkeypatch.setattr(s.edge.recorder, "record", not_recorded)
        received = await s.post("acme", "alice", content="received live")
        assert (await alice.recv_json(within_s=5))["id"] == received

        held = await _held_heartbeats(s, monkeypatch)
        await _lose_presence(s, "acme", "alice")
        missed = await _routed_to_nobody(s, "acme", "alice")
        assert await s.status_of("acme", received) == "pending"

        held.release()
        frame = await alice.recv_json(within_s=5)
        assert frame["id"] == missed  # the missed one only, not ``received`` again
        await trio.sleep(3 * FAST_PRESENCE.presence_heartbeat_s)
        assert await _notifications_until_pong(alice) == []
        # The other session is subscribed to another channel only: it gets neither.
        assert await _notifications_until_pong(other_channel) == []
        for client in (alice, other_channel):
            await client.close()


async def test_presence_is_checked_as_soon_as_the_delivery_reader_gets_redis_back(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat is 30 s here: only the reader's recovery can trigger the check."""
    settings = attrs.evolve(TEST_EDGE, presence_heartbeat_s=30.0)
    failed_reads = 0
    redis_down = False
    consume_once = DeliveryConsumer.consume_once

    async def flaky_consume_once(self: DeliveryConsumer) -> int:
        nonlocal failed_reads
        if redis_down:
            failed_reads += 1
            raise UNAVAILABLE[0]("Redis is away (injected)")
        return await consume_once(self)

    monkeypatch.setattr(DeliveryConsumer, "consume_once", flaky_consume_once)
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=settings) as s:
        alice = await s.connect("acme", "alice")
        await _lose_presence(s, "acme", "alice")
        missed = await _routed_to_nobody(s, "acme", "alice")

        redis_down = True
        with trio.fail_after(5):
            while failed_reads < 2:  # noqa: ASYNC110 - the reader runs in its own task
                await trio.sleep(0.02)
        redis_down = False

        # Far less than the 30 s heartbeat: the registration is back, and the
        # session gets what was routed while it was missing.
        presence_key = s.keys.presence("acme", "alice")
        with trio.fail_after(5):
            while not await s.redis.exists([presence_key]):  # noqa: ASYNC110 - Redis is polled
                await trio.sleep(0.02)
        frame = await alice.recv_json(within_s=5)
        assert frame["id"] == missed
        await s.wait_status("acme", missed, "delivered")
        await alice.close()


async def test_a_catch_up_does_not_resend_what_the_session_remembered_when_it_began(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-up's own frames push older ids out of the sent window (8 here)."""
    settings = attrs.evolve(FAST_PRESENCE, sent_window=8)
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=settings) as s:
        alice = await s.connect("acme", "alice")

        async def not_recorded(*_args: Any, **_kwargs: Any) -> None:
            return None

        monkeypatch.setattr(s.edge.recorder, "record", not_recorded)  # all stay pending
        received = [await s.post("acme", "alice", content=f"live {i}") for i in range(12)]
        assert [(await alice.recv_json(within_s=5))["id"] for _ in received] == received

        held = await _held_heartbeats(s, monkeypatch)
        await _lose_presence(s, "acme", "alice")
        missed = await _routed_to_nobody(s, "acme", "alice")
        held.release()
        await trio.sleep(5 * FAST_PRESENCE.presence_heartbeat_s)
        again = await _notifications_until_pong(alice)
        assert missed in again
        # The four the window had forgotten before the catch-up may come
        # again; the eight it still remembered must not.
        assert set(again) - {missed} <= set(received[:4]), again
        await alice.close()


async def test_a_lost_registration_is_found_when_another_users_count_is_too_high(
    redis_url: str, tmp_path: Path, redis_prefix: str
) -> None:
    """As after a failover to a lagging replica: alice's last unregister and bob's register lost."""
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=FAST_PRESENCE) as s:
        gateway = s.edge.gateway_id
        alice = await s.connect("acme", "alice")
        bob = await s.connect("acme", "bob")
        await s.redis.hincrby(s.keys.presence("acme", "alice"), gateway, 1)
        await s.redis.srem(s.keys.gateway_users(gateway), [s.keys.presence("acme", "bob")])
        await _lose_presence(s, "acme", "bob")
        # The sum of the gateway's counts is still right; bob is not registered.
        with trio.fail_after(5):
            while not await s.redis.exists([s.keys.presence("acme", "bob")]):  # noqa: ASYNC110
                await trio.sleep(0.02)
        live = await s.post("acme", "bob", content="after the check")
        assert (await bob.recv_json(within_s=5))["id"] == live
        for client in (alice, bob):
            await client.close()


async def test_a_user_whose_unregister_failed_meanwhile_is_caught_up_too(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settling alice's exact count (her unregister failed) must not hide her lost registration."""
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=FAST_PRESENCE) as s:
        alice = await s.connect("acme", "alice")
        alice_tab = await s.connect("acme", "alice")
        bob = await s.connect("acme", "bob")
        held = await _held_heartbeats(s, monkeypatch)
        for user in ("alice", "bob"):
            await _lose_presence(s, "acme", user)
        missed_alice = await _routed_to_nobody(s, "acme", "alice")
        missed_bob = await _routed_to_nobody(s, "acme", "bob")
        await _close_with_failed_unregister(s, monkeypatch, alice_tab, "alice")

        held.release()
        assert (await alice.recv_json(within_s=5))["id"] == missed_alice
        assert (await bob.recv_json(within_s=5))["id"] == missed_bob
        for client in (alice, bob):
            await client.close()


async def test_a_registration_on_its_way_does_not_hide_a_lost_one(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second session's register re-creates the user's key while the check is out.

    Without the clock slack, so only the time the catch-up reads from decides.
    """
    monkeypatch.setattr("notifactor.edge.presence_catch_up.CLOCK_SLACK_US", 0)
    settings = attrs.evolve(TEST_EDGE, presence_heartbeat_s=1.0)
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=settings) as s:
        presence = s.edge.context.presence
        checked = trio.Event()
        real_missing = presence.missing

        async def noting_missing(gateway_id: str, counts: Any) -> Any:
            found = await real_missing(gateway_id, counts)
            checked.set()
            return found

        monkeypatch.setattr(presence, "missing", noting_missing)
        alice = await s.connect("acme", "alice")
        with trio.fail_after(5):
            await checked.wait()  # a check found alice registered
        await _lose_presence(s, "acme", "alice")
        missed = await _routed_to_nobody(s, "acme", "alice")

        # The second session's registration lands in Redis at once, but its
        # reply comes only after the next check has run.
        real_register = presence.register

        async def late_reply(tenant_id: str, user_id: str, gateway_id: str) -> None:
            await real_register(tenant_id, user_id, gateway_id)
            with trio.fail_after(5):
                await checked.wait()

        checked = trio.Event()
        monkeypatch.setattr(presence, "register", late_reply)
        second = await s.connect("acme", "alice")
        monkeypatch.setattr(presence, "register", real_register)
        assert (await alice.recv_json(within_s=5))["id"] == missed
        for client in (alice, second):
            await client.close()


async def test_a_count_left_too_high_by_a_failed_unregister_does_not_hide_a_loss(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice's key is lost; a second tab re-creates it, then fails to unregister (count stays 1)."""
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=FAST_PRESENCE) as s:
        alice = await s.connect("acme", "alice")
        held = await _held_heartbeats(s, monkeypatch)
        await _lose_presence(s, "acme", "alice")
        missed = await _routed_to_nobody(s, "acme", "alice")
        tab = await s.connect("acme", "alice")
        await _close_with_failed_unregister(s, monkeypatch, tab, "alice")
        held.release()
        assert (await alice.recv_json(within_s=5))["id"] == missed
        await alice.close()


async def test_a_reassert_whose_reply_is_lost_still_catches_up(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(redis_url, tmp_path, redis_prefix, settings=FAST_PRESENCE) as s:
        presence = s.edge.context.presence
        alice = await s.connect("acme", "alice")
        held = await _held_heartbeats(s, monkeypatch)
        await _lose_presence(s, "acme", "alice")
        missed = await _routed_to_nobody(s, "acme", "alice")
        real_reassert = presence.reassert
        lost_replies = 1

        async def reply_lost(gateway_id: str, counts: Any) -> None:
            nonlocal lost_replies
            await real_reassert(gateway_id, counts)  # it lands in Redis ...
            if lost_replies:
                lost_replies -= 1
                raise UNAVAILABLE[0]("reply lost (injected)")  # ... but its reply does not

        monkeypatch.setattr(presence, "reassert", reply_lost)
        held.release()
        assert (await alice.recv_json(within_s=5))["id"] == missed
        await alice.close()
