"""The catch-up after lost presence: what it reads, what it sends, and how it fails.

The store here is a stand-in (a list per user, read in pages like the real
ones); the end-to-end behaviour on real Redis and storage is in
``tests/e2e/test_ws_presence_catch_up.py``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import trio
import trio.testing

from notifactor.domain.cursor import CursorKind, decode_cursor, inbox_cursor
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import InboxEntry, Notification
from notifactor.edge.presence_catch_up import CLOCK_SLACK_US, PresenceCatchUp, stored_deliver
from notifactor.edge.registry import Deliver, SessionHandle, SessionRegistry
from notifactor.ports.notification_store import TransientStoreError

T0_US = 1_700_000_000_000_000


def entry(user_id: str, n: int, state: DeliveryState) -> InboxEntry:
    created_us = T0_US + n
    notification = Notification(
        tenant_id="t",
        id=f"{user_id}-{n:03d}",
        user_id=user_id,
        channel="alerts",
        content=f"n{n}",
        created_at=datetime.fromtimestamp(created_us / 1_000_000, UTC),
    )
    return InboxEntry(
        notification=notification,
        cursor=inbox_cursor(notification.id, notification.created_at_us),
        state=state,
    )


class PagedStore:
    """``inbox_after`` over fixed inboxes; records every read; may fail for one user."""

    def __init__(self, inboxes: dict[str, list[InboxEntry]], failing: str | None = None) -> None:
        self.inboxes = inboxes
        self.failing = failing
        self.reads: list[tuple[str, str | None]] = []

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        await trio.lowlevel.checkpoint()
        self.reads.append((user_id, cursor))
        if user_id == self.failing:
            raise TransientStoreError("storage timed out (injected)")
        after = decode_cursor(CursorKind.INBOX, cursor or inbox_cursor("", 0))
        newer = [
            e
            for e in self.inboxes.get(user_id, [])
            if (e.notification.created_at_us, e.notification.id) > (after.time_us, after.key)
        ]
        return newer[:limit]


def session(registry: SessionRegistry, user_id: str, got: list[str]) -> None:
    async def room() -> None:
        return None

    def deliver(item: Deliver) -> bool:
        got.append(item.message.id)
        return False

    registry.add(
        SessionHandle(
            session_id=f"s-{user_id}",
            tenant_id="t",
            user_id=user_id,
            deliver=deliver,
            make_room=room,
        )
    )


async def test_only_never_written_entries_are_sent_page_by_page_from_before_the_time() -> None:
    states = [DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.RETRYING]
    inbox = [entry("alice", n, states[n % 3]) for n in range(7)]
    store = PagedStore({"alice": inbox})
    registry = SessionRegistry()
    got: list[str] = []
    session(registry, "alice", got)
    catch_up = PresenceCatchUp(store, registry, page=2)  # type: ignore[arg-type]

    assert await catch_up.catch_up({("t", "alice"): T0_US + CLOCK_SLACK_US}) == (1, 5)
    assert got == [e.notification.id for e in inbox if e.state is not DeliveryState.DELIVERED]
    first_read = decode_cursor(CursorKind.INBOX, store.reads[0][1] or "")
    assert (first_read.time_us, first_read.key) == (T0_US, "")  # the slack before the time
    assert len(store.reads) == 4  # pages of 2 until a short one


def test_a_stored_entry_becomes_the_frame_and_message_a_live_one_would_be() -> None:
    stored = entry("alice", 5, DeliveryState.PENDING)
    deliver = stored_deliver(stored)
    message = deliver.message
    assert (message.id, message.tenant_id, message.user_id) == ("alice-005", "t", "alice")
    assert message.cursor == stored.cursor
    assert (message.attempt, deliver.trace) == (1, None)
    frame = json.loads(deliver.frame)
    assert frame["type"] == "notification"
    assert (frame["id"], frame["cursor"], frame["content"]) == ("alice-005", stored.cursor, "n5")


async def test_a_user_without_sessions_is_not_read() -> None:
    store = PagedStore({"bob": [entry("bob", 1, DeliveryState.PENDING)]})
    catch_up = PresenceCatchUp(store, SessionRegistry(), page=10)  # type: ignore[arg-type]
    assert await catch_up.catch_up({("t", "bob"): T0_US}) == (0, 0)
    assert store.reads == []


async def test_a_storage_failure_is_a_warning_and_skips_the_remaining_users(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notifactor.edge")
    store = PagedStore(
        {name: [entry(name, 1, DeliveryState.PENDING)] for name in ("a", "b", "c")}, failing="b"
    )
    registry = SessionRegistry()
    got: list[str] = []
    for name in ("a", "b", "c"):
        session(registry, name, got)
    catch_up = PresenceCatchUp(store, registry, page=10)  # type: ignore[arg-type]

    users = [("t", "a"), ("t", "b"), ("t", "c")]
    assert await catch_up.catch_up(dict.fromkeys(users, T0_US)) == (1, 1)
    assert got == ["a-001"]
    assert [user for user, _ in store.reads] == ["a", "b"]  # c is skipped
    (failure,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert getattr(failure, "event", None) == "presence_catch_up_failed"
    assert "2 users not caught up" in failure.getMessage()
    assert failure.exc_info is None  # no traceback for an expected failure
    (summary,) = [r for r in caplog.records if getattr(r, "event", None) == "presence_catch_up"]
    assert summary.levelno == logging.INFO


async def test_requests_run_one_at_a_time_and_those_made_meanwhile_run_after_merged() -> None:
    store = PagedStore(
        {
            "a": [entry("a", 1, DeliveryState.PENDING)],
            "b": [entry("b", 1, DeliveryState.PENDING)],
        }
    )
    slow_read = trio.Event()
    real = store.inbox_after

    async def slow_for_a(tenant_id: str, user_id: str, cursor: str | None, limit: int) -> Any:
        if user_id == "a":
            await slow_read.wait()
        return await real(tenant_id, user_id, cursor, limit)

    store.inbox_after = slow_for_a  # type: ignore[method-assign]
    registry = SessionRegistry()
    got: list[str] = []
    session(registry, "a", got)
    session(registry, "b", got)
    catch_up = PresenceCatchUp(store, registry, page=10)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(catch_up.run)
        catch_up.request({("t", "a"): T0_US})
        await trio.testing.wait_all_tasks_blocked()  # the first one reads a's inbox
        catch_up.request({("t", "b"): T0_US + 10 * CLOCK_SLACK_US})
        catch_up.request({("t", "b"): T0_US})  # merged: the earlier time wins
        await trio.testing.wait_all_tasks_blocked()
        assert store.reads == []  # b waits for the one running
        slow_read.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert got == ["a-001", "b-001"]
    assert [user for user, _ in store.reads] == ["a", "b"]  # b read once
    assert store.reads[1][1] == store.reads[0][1]  # from the earlier time


async def test_a_bug_in_a_catch_up_is_logged_and_later_ones_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = SessionRegistry()
    got: list[str] = []
    session(registry, "a", got)
    store = PagedStore({"a": [entry("a", 1, DeliveryState.PENDING)]})
    catch_up = PresenceCatchUp(store, registry, page=10)  # type: ignore[arg-type]
    broken = True
    real = store.inbox_after

    async def sometimes_broken(*args: object) -> list[InboxEntry]:
        if broken:
            raise KeyError("a bug (injected)")
        return await real(*args)  # type: ignore[arg-type]

    store.inbox_after = sometimes_broken  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(catch_up.run)
        catch_up.request({("t", "a"): T0_US})
        await trio.testing.wait_all_tasks_blocked()
        broken = False
        catch_up.request({("t", "a"): T0_US})
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert got == ["a-001"]
    (crash,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert getattr(crash, "event", None) == "presence_catch_up_failed"


async def test_cancellation_is_not_swallowed() -> None:
    registry = SessionRegistry()
    session(registry, "a", [])

    class StuckStore:
        async def inbox_after(self, *args: object) -> list[InboxEntry]:
            await trio.sleep_forever()
            raise AssertionError("unreachable")

    catch_up = PresenceCatchUp(StuckStore(), registry, page=10)  # type: ignore[arg-type]
    with trio.move_on_after(0.05) as scope:
        await catch_up.catch_up({("t", "a"): T0_US})
    assert scope.cancelled_caught
