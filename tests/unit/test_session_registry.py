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


def test_users_whose_unregister_failed_are_settled_with_their_exact_count() -> None:
    registry = SessionRegistry()
    stays, leaves, bobs = handle("s1"), handle("s2"), handle("s3", "bob")
    for each in (stays, leaves, bobs):
        registry.add(each)
    registry.remove(leaves)
    registry.unregister_unsure("t", "alice")
    registry.remove(bobs)
    registry.unregister_unsure("t", "bob")
    assert registry.take_unsettled() == {("t", "alice"): 1, ("t", "bob"): 0}
    assert registry.take_unsettled() == {}  # taken: marked again only if writing fails


def test_a_user_with_a_session_registering_is_settled_later() -> None:
    registry = SessionRegistry()
    registry.unregister_unsure("t", "alice")
    newcomer = handle("s1")
    registry.add(newcomer, registering=True)
    assert registry.take_unsettled() == {}  # its registration may land either side
    registry.registration_done(newcomer)
    assert registry.take_unsettled() == {("t", "alice"): 1}


async def test_a_session_ending_during_a_settlement_is_settled_again() -> None:
    """The settlement's count was taken before a session of the same user ended;
    that session's unregister may land first and the settlement then writes a
    count one too high, so the user is settled again on the next tick."""
    import trio

    from notifactor.adapters.redis_dispatch import RedisKeys
    from notifactor.edge.delivery_consumer import DeliveryConsumer
    from notifactor.edge.settings import EdgeSettings

    registry = SessionRegistry()
    stays, ends = handle("s1"), handle("s2")
    registry.add(stays)
    registry.add(ends)
    registry.unregister_unsure("t", "alice")  # a third session's unregister failed
    written: list[dict[tuple[str, str], int]] = []
    in_flight = trio.Event()
    release = trio.Event()

    class SlowPresence:
        async def settle(self, gateway_id: str, counts: dict[tuple[str, str], int]) -> None:
            in_flight.set()
            await release.wait()
            written.append(dict(counts))

    consumer = DeliveryConsumer(
        None,  # type: ignore[arg-type]  # settling talks to presence only
        keys=RedisKeys(),
        presence=SlowPresence(),  # type: ignore[arg-type]
        registry=registry,
        gateway_id="gw",
        settings=EdgeSettings(),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer._settle_presence)
        await in_flight.wait()
        registry.remove(ends)  # ends while the settlement is in flight
        release.set()
    assert written == [{("t", "alice"): 2}]
    assert registry.take_unsettled() == {("t", "alice"): 1}


async def test_an_admission_that_timed_out_has_its_member_removed() -> None:
    """The admission script may run after the upgrade gave up on it (a late
    reply): the member is queued for removal, so it holds no slot of the tenant."""
    import trio

    from notifactor.edge.admission import ConnectionAdmission, Verdict

    class LateStore:
        def __init__(self) -> None:
            self.members: set[tuple[str, str]] = set()

        async def admit(self, tenant_id: str, member: str, limit: int) -> object:
            self.members.add((tenant_id, member))  # the server ran it...
            await trio.sleep_forever()  # ...and the reply is late
            raise AssertionError("unreachable")

        async def release(self, batch: list[tuple[str, str]]) -> None:
            self.members.difference_update(batch)

    store = LateStore()
    registry = SessionRegistry()
    admission = ConnectionAdmission(registry, store, gateway_id="gw", timeout_s=0.1)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(admission.run)
        late = await admission.admit("t", "s1", 5)
        assert late.verdict is Verdict.UNAVAILABLE
        with trio.fail_after(5):
            while store.members:  # noqa: ASYNC110 - the remover runs in its own task
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert registry.connections("t") == 0
