"""Stop signals: registered waits and callbacks, released exactly once on a stop request."""

from __future__ import annotations

import trio
from hypothesis import given
from hypothesis import strategies as st

from notifactor.actors.stop import StopSignal

# (register?, which of 6 waits: 0-2 cancel scopes, 3-5 callbacks)
steps = st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=5)), max_size=30)


@given(steps, st.booleans())
def test_a_stop_releases_what_is_registered_and_nothing_else(
    plan: list[tuple[bool, int]], late: bool
) -> None:
    trio.run(_scenario, plan, late)


async def _scenario(plan: list[tuple[bool, int]], late: bool) -> None:
    signal = StopSignal()
    scopes = [trio.CancelScope() for _ in range(3)]
    called: list[int] = []
    callbacks = [lambda index=index: called.append(index) for index in range(3, 6)]
    waits = [*scopes, *callbacks]
    registered: list[int] = []  # the model: registering twice keeps one registration
    for register, index in plan:
        if register:
            signal.register(waits[index])  # type: ignore[arg-type]
            if index not in registered:
                registered.append(index)
        else:
            signal.unregister(waits[index])  # type: ignore[arg-type]
            if index in registered:
                registered.remove(index)
        assert signal.registered == len(registered)
    signal.request()
    assert [index for index, scope in enumerate(scopes) if scope.cancel_called] == sorted(
        index for index in registered if index < 3
    )
    assert sorted(called) == sorted(index for index in registered if index >= 3)
    assert signal.registered == 0
    if late:  # registered after the stop: released at once
        signal.register(callbacks[0])
        assert called.count(3) == (3 in registered) + 1
