"""Upgrades that race the pool's capacity or a graceful stop get an HTTP answer, not a 101 cut short."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from notifactor.config import Config
from notifactor.edge.admission import Admission
from notifactor.supervisors import SupervisionConfig
from notifactor.supervisors.config import SessionsPoolConfig
from tests.e2e.stores import Storage
from tests.e2e.ws_support import Stack, raw_upgrade, read_http_head, running_stack, stack_config
from tests.trio_tasks import tasks_running


async def _answer(
    port: int, user: str, answers: list[bytes], *, hold_until: int | None = None
) -> None:
    """Send an upgrade; keep the head of what the server answers.

    With ``hold_until``, the connection stays open until that many answers are
    in: a session that got in keeps its slot while the others are answered.
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(raw_upgrade(port, "acme", user))
    answers.append(await read_http_head(stream, within_s=10))
    if hold_until is not None:
        with trio.fail_after(10):
            while len(answers) < hold_until:  # noqa: ASYNC110
                await trio.sleep(0.01)
    await stream.aclose()


def _with_pool_of(tmp_path: Path, sessions: int) -> Config:
    return stack_config(
        tmp_path,
        supervision=SupervisionConfig(
            partitions=4, sessions=SessionsPoolConfig(max_children=sessions)
        ),
    )


def _hold_admission(s: Stack, monkeypatch: pytest.MonkeyPatch) -> tuple[trio.Event, trio.Event]:
    """Make the tenant's connection count slow: (an upgrade is waiting for it, let it answer)."""
    admitting, go_on = trio.Event(), trio.Event()
    admit = s.edge.admission.admit

    async def slow_admit(tenant_id: str, session_id: str, limit: int) -> Admission:
        admitting.set()
        await go_on.wait()  # Redis is slow to answer
        return await admit(tenant_id, session_id, limit)

    monkeypatch.setattr(s.edge.admission, "admit", slow_admit)
    return admitting, go_on


async def test_upgrades_racing_for_the_last_session_slot_get_503_not_101(
    redis_url: str, tmp_path: Path, redis_prefix: str
) -> None:
    """Both used to pass the pool check; the loser got a 101, then a 1013 close."""
    config = _with_pool_of(tmp_path, 1)
    async with running_stack(
        redis_url, tmp_path, redis_prefix, config=config, dispatcher=False, http=False
    ) as s:
        assert s.edge.port is not None
        for attempt in range(3):
            answers: list[bytes] = []
            async with trio.open_nursery() as nursery:
                for index in range(2):
                    # The one that gets in stays until the other is answered:
                    # had it left first, the other would rightly get in too.
                    nursery.start_soon(
                        partial(_answer, hold_until=2),
                        s.edge.port,
                        f"u{attempt}-{index}",
                        answers,
                    )
            statuses = sorted(answer.split(b" ", 2)[1] for answer in answers)
            assert statuses == [b"101", b"503"], answers
            refused = next(answer for answer in answers if b" 503 " in answer)
            assert b"retry-after" in refused.lower()
            with trio.fail_after(10):  # the one that got in has left: its slot is free again
                while len(s.edge.pool):  # noqa: ASYNC110
                    await trio.sleep(0.02)


async def test_an_upgrade_admitted_while_the_gateway_starts_stopping_gets_503(
    redis_url: str,
    tmp_path: Path,
    redis_prefix: str,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stop used to pass it by: a 101 and a welcome, then cut off without a 1001."""
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, dispatcher=False, http=False
    ) as s:
        assert s.edge.port is not None
        admitting, go_on = _hold_admission(s, monkeypatch)
        answers: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_answer, s.edge.port, "late", answers)
            with trio.fail_after(10):
                await admitting.wait()
            s.edge_root.request_stop()
            await trio.sleep(0.2)  # the listener has closed the sessions it holds
            go_on.set()
        (answer,) = answers
        assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
        assert b"retry-after" in answer.lower()


async def test_a_client_gone_before_its_request_is_whole_leaves_no_task_behind(
    redis_url: str, tmp_path: Path, redis_prefix: str
) -> None:
    """Its upgrade used to wait out ``connect_timeout_s`` (10 s) for a request that never came."""
    async with running_stack(redis_url, tmp_path, redis_prefix, dispatcher=False, http=False) as s:
        assert s.edge.port is not None
        assert s.edge.settings.connect_timeout_s >= 5
        await trio.testing.wait_all_tasks_blocked(0.05)
        before = tasks_running()
        for index in range(10):
            stream = await trio.open_tcp_stream("127.0.0.1", s.edge.port)
            await stream.send_all(raw_upgrade(s.edge.port, "acme", f"half-{index}")[:40])
            await stream.aclose()
        with trio.fail_after(3):
            while tasks_running() > before:  # noqa: ASYNC110
                await trio.sleep(0.05)


async def test_a_session_still_starting_is_counted_once_against_the_pool(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool reserves a starting session's slot; counting it as 'being accepted' too
    refused upgrades while the pool had room."""
    config = _with_pool_of(tmp_path, 2)
    async with running_stack(
        redis_url, tmp_path, redis_prefix, config=config, dispatcher=False, http=False
    ) as s:
        assert s.edge.port is not None
        presence = s.edge.context.presence
        register = presence.register
        registering, go_on = trio.Event(), trio.Event()

        async def slow_register(tenant_id: str, user_id: str, gateway_id: str) -> None:
            registering.set()
            await go_on.wait()  # Redis is slow to take the first session's presence
            await register(tenant_id, user_id, gateway_id)

        monkeypatch.setattr(presence, "register", slow_register)
        first: list[bytes] = []
        second: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_answer, s.edge.port, "first", first)
            with trio.fail_after(10):
                await registering.wait()
            monkeypatch.setattr(presence, "register", register)
            await _answer(s.edge.port, "second", second)  # one of two slots is taken
            go_on.set()
        assert second[0].startswith(b"HTTP/1.1 101"), second[0][:300]


async def test_a_flood_while_the_upgrade_waits_for_admission_gets_no_101(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(redis_url, tmp_path, redis_prefix, dispatcher=False, http=False) as s:
        assert s.edge.port is not None
        admitting, go_on = _hold_admission(s, monkeypatch)
        stream = await trio.open_tcp_stream("127.0.0.1", s.edge.port)
        await stream.send_all(raw_upgrade(s.edge.port, "acme", "flood"))
        with trio.fail_after(10):
            await admitting.wait()
        # RFC 6455 §4.1: nothing before the 101. The server stops reading and
        # closes; the client's writes fail or stall.
        with trio.move_on_after(2):
            try:
                while True:
                    await stream.send_all(b"x" * 65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        go_on.set()
        received = b""
        with trio.fail_after(5):
            try:
                while chunk := await stream.receive_some(4096):
                    received += chunk
            except trio.BrokenResourceError:  # reset: the server closed with our data unread
                pass
        await stream.aclose()
        assert b"101" not in received.split(b"\r\n", 1)[0], received[:300]
        with trio.fail_after(5):
            while len(s.edge.pool) or s.edge.registry.connections("acme"):  # noqa: ASYNC110
                await trio.sleep(0.05)
