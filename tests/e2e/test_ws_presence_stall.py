"""A session whose presence registration cannot be done: 1013 after the 101, not a hang.

The upgrade's admission has passed and the ``101`` is out when the session
registers its presence (Redis). Redis stalling right then (stopped, or a
partition without a reset) used to leave the client with a ``101`` and no
``welcome`` for as long as the stall lasted, the listener's upgrade task
waiting and a pool slot held. Now the registration is bounded by
``admission_timeout_s``: past it the client is closed with 1013 (try again
later), one warning is logged (no token in it), and the gateway goes on
serving. A bug in the registration still closes with 1011.
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest
import trio
from websockets.exceptions import ConnectionClosed

from tests.e2e.ws_support import TEST_EDGE, Stack, WsClient, running_stack

pytestmark = pytest.mark.e2e

BOUND_S = 0.5
MARGIN_S = 2.0


async def _closed_before_welcome(url: str) -> tuple[int, str, float]:
    """Open a session (its 101 comes); the close code and reason it gets, and how soon."""
    client = await WsClient.open(url)
    upgraded = trio.current_time()
    with pytest.raises(ConnectionClosed) as closed:  # a welcome, or a wait, fails here
        await client.recv_json(within_s=BOUND_S + 5)
    received = closed.value.rcvd
    assert received is not None, "no close frame came"
    return received.code, received.reason, trio.current_time() - upgraded


async def _nothing_left_of(s: Stack, user: str) -> None:
    """The refused session holds no pool slot, no local session and no tenant count."""
    with trio.fail_after(5):
        while len(s.edge.pool) or s.edge.registry.connections("acme"):  # noqa: ASYNC110
            await trio.sleep(0.02)
    assert s.edge.registry.sessions_of("acme", user) == []


async def test_a_stalled_presence_registration_closes_1013_and_the_gateway_serves_on(
    redis_url: str,
    tmp_path: Path,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="notifactor")
    settings = attrs.evolve(TEST_EDGE, admission_timeout_s=BOUND_S)
    async with running_stack(
        redis_url, tmp_path, redis_prefix, settings=settings, dispatcher=False, http=False
    ) as s:
        presence = s.edge.context.presence
        register = presence.register
        stalled = 0

        async def stalled_register(tenant_id: str, user_id: str, gateway_id: str) -> None:
            nonlocal stalled
            stalled += 1
            await trio.sleep_forever()  # Redis stopped (SIGSTOP) after the admission

        monkeypatch.setattr(presence, "register", stalled_register)
        url = s.url_for("acme", "alice")
        code, reason, after_s = await _closed_before_welcome(url)
        assert (code, reason) == (1013, "try again later")
        assert BOUND_S / 2 <= after_s < BOUND_S + MARGIN_S, after_s
        assert stalled == 1
        await _nothing_left_of(s, "alice")

        monkeypatch.setattr(presence, "register", register)  # Redis is back
        healthy = await s.connect("acme", "alice")
        assert healthy.welcome["user_id"] == "alice"
        await healthy.close()

    warnings = [r for r in caplog.records if "presence registry unavailable" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    signature = url.rsplit(".", 1)[-1]  # the refused client's token's: only the token holds it
    assert all(signature not in r.getMessage() for r in caplog.records)


async def test_a_presence_registration_that_crashes_still_closes_1011(
    redis_url: str, tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not Redis being unavailable but a bug: an internal error, not 'try again later'."""
    async with running_stack(redis_url, tmp_path, redis_prefix, dispatcher=False, http=False) as s:
        presence = s.edge.context.presence
        register = presence.register

        async def broken_register(tenant_id: str, user_id: str, gateway_id: str) -> None:
            raise RuntimeError("a bug in the registration (injected)")

        monkeypatch.setattr(presence, "register", broken_register)
        code, reason, _ = await _closed_before_welcome(s.url_for("acme", "bob"))
        assert (code, reason) == (1011, "session could not start")
        await _nothing_left_of(s, "bob")

        monkeypatch.setattr(presence, "register", register)
        healthy = await s.connect("acme", "bob")
        assert healthy.welcome["user_id"] == "bob"
        await healthy.close()
