"""The session registry's per-user counts, as the presence heartbeat compares them."""

from __future__ import annotations

from notifactor.edge.registry import SessionHandle, SessionRegistry


async def _room() -> None:
    return None


def handle(session_id: str, user_id: str = "alice") -> SessionHandle:
    return SessionHandle(
        session_id=session_id,
        tenant_id="t",
        user_id=user_id,
        deliver=lambda _deliver: False,
        make_room=_room,
    )


def test_a_session_still_registering_is_not_counted_yet() -> None:
    registry = SessionRegistry()
    first, second = handle("s1"), handle("s2")
    registry.add(first, registering=True)
    registry.registration_done(first)
    registry.add(second, registering=True)  # its registration is on its way
    assert registry.user_counts() == {("t", "alice"): 1}
    assert len(registry.sessions_of("t", "alice")) == 2  # fan-out reaches it already
    registry.registration_done(second)
    assert registry.user_counts() == {("t", "alice"): 2}


def test_a_failed_registration_leaves_nothing_behind() -> None:
    registry = SessionRegistry()
    only = handle("s1", "bob")
    registry.add(only, registering=True)
    registry.remove(only)  # the registration failed
    registry.registration_done(only)
    assert registry.user_counts() == {}
    assert len(registry) == 0
