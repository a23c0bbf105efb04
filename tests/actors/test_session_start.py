"""A session's start against fakes: its presence registration is bounded in time.

The session registers its presence (Redis) after the ``101``, before its
``welcome``. A registry that stalls, or cannot be reached, must not hold the
start (and the listener's upgrade task, and a pool slot) for as long as it
lasts: past ``admission_timeout_s`` the start fails with
:class:`PresenceUnavailable` (the listener closes with 1013), and the session
leaves no trace but a mark to settle the user's presence count.
"""

from __future__ import annotations

import attrs
import coredis
import pytest
import trio
import trio.testing

from notifactor.actors.session import PresenceUnavailable, SessionActor
from notifactor.edge.settings import EdgeSettings
from tests.actors.test_session_actor import Env, FakePresence, FakeSocket, make_env

BOUND_S = 2.0


@attrs.define
class StalledPresence(FakePresence):
    """A registry whose ``register`` never answers (Redis stopped), or raises ``error``."""

    error: Exception | None = None
    calls: int = 0

    async def register(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        await trio.sleep_forever()


def _env_with(presence: StalledPresence) -> Env:
    env = make_env(EdgeSettings(heartbeat_s=10, admission_timeout_s=BOUND_S))
    env.context = attrs.evolve(env.context, presence=presence)
    env.presence = presence
    return env


def _session(env: Env) -> SessionActor:
    return SessionActor(
        session_id="s0", tenant_id="t", user_id="u", socket=FakeSocket(), context=env.context
    )


async def test_a_stalled_registration_fails_the_start_at_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """It used to wait for as long as Redis stalled: a 101 and no welcome, a slot held."""
    env = _env_with(StalledPresence())
    session = _session(env)
    started = trio.current_time()
    with trio.fail_after(60), pytest.raises(PresenceUnavailable):
        await session.on_start()
    assert trio.current_time() - started == pytest.approx(BOUND_S)
    assert env.registry.sessions_of("t", "u") == []
    assert env.registry.user_counts() == {}
    # The script may run when Redis wakes up: the heartbeat settles the count (to 0).
    assert env.registry.take_unsettled() == {("t", "u"): 0}


async def test_an_unreachable_registry_fails_the_start_as_unavailable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    env = _env_with(StalledPresence(error=coredis.exceptions.ConnectionError("refused")))
    with pytest.raises(PresenceUnavailable, match="refused"):
        await _session(env).on_start()
    assert env.registry.sessions_of("t", "u") == []


async def test_a_bug_in_the_registration_is_not_taken_for_an_outage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only Redis being unavailable is transient (1013); anything else stays a crash (1011)."""
    env = _env_with(StalledPresence(error=RuntimeError("bug")))
    with pytest.raises(RuntimeError, match="bug"):
        await _session(env).on_start()
    assert env.registry.sessions_of("t", "u") == []
