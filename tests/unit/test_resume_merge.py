"""Resume: replay from storage merged with live traffic, never losing or doubling an id."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifactor.domain.cursor import Position
from notifactor.domain.resume import Keyed, ReplayMerge, ReplayOverflow, SentWindow


def test_sent_window_drops_duplicates_and_forgets_the_oldest() -> None:
    window: SentWindow[int] = SentWindow(2)
    assert window.add("a", 1)
    assert window.add("b", 2)
    assert not window.add("a", 9)
    assert window.get("a") == 1
    assert window.add("c", 3)
    assert "a" not in window
    assert "b" in window
    assert len(window) == 2


def test_overflow_is_reported() -> None:
    merge: ReplayMerge[str] = ReplayMerge(Position(time_us=0, key=""), limit=1)
    merge.hold(Keyed(id="a", position=Position(time_us=1, key="a"), item="a"))
    merge.hold(Keyed(id="a", position=Position(time_us=1, key="a"), item="a"))  # repeat: fine
    with pytest.raises(ReplayOverflow):
        merge.hold(Keyed(id="b", position=Position(time_us=2, key="b"), item="b"))


def _pos(n: int) -> Position:
    return Position(time_us=n, key=f"id{n:04d}")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[int], list[int], list[tuple[str, int]], set[int]]:
    """(since, stored, live_extra, interleaving, already_sent).

    Notifications are numbered by acceptance order. ``stored`` is what the
    replay reads (everything up to some point, as storage is ahead of or
    behind the live stream); live traffic is stored ids after ``since`` that
    also arrive live (possibly twice: a retry), plus ids stored only after
    the replay read them (``live_extra``). Live may also bring ids at or
    before ``since``: late retries, of what the client has (this session
    sent it: ``already``) or of what it never had.
    """
    total = draw(st.integers(0, 40))
    since = draw(st.integers(0, total))
    read_upto = draw(st.integers(since, total))
    stored = list(range(since + 1, read_upto + 1))
    live_extra = list(range(read_upto + 1, total + 1))
    live_pool = [n for n in range(1, total + 1) if draw(st.booleans()) or n > read_upto]
    live = live_pool + draw(st.lists(st.sampled_from(live_pool), max_size=5)) if live_pool else []
    live = draw(st.permutations(live))
    ops = [("replay", n) for n in stored]
    merged: list[tuple[str, int]] = []
    li, ri = 0, 0
    while li < len(live) or ri < len(ops):
        take_live = ri >= len(ops) or (li < len(live) and draw(st.booleans()))
        if take_live:
            merged.append(("live", live[li]))
            li += 1
        else:
            merged.append(ops[ri])
            ri += 1
    already = set(draw(st.lists(st.integers(1, since), max_size=5))) if since else set()
    return since, stored, live_extra, merged, already


@settings(max_examples=400)
@given(scenarios(), st.sampled_from([1, 3, 10_000]))
def test_replay_and_live_never_lose_or_double(
    scenario: tuple[int, list[int], list[int], list[tuple[str, int]], set[int]],
    window_size: int,
) -> None:
    """Also when the replay is longer than the sent window (it forgets replayed ids)."""
    since, stored, live_extra, ops, already = scenario
    window: SentWindow[int] = SentWindow(window_size)
    for n in already:
        window.add(f"id{n:04d}", n)
    merge: ReplayMerge[int] = ReplayMerge(_pos(since), limit=10_000)
    sent: list[int] = []
    # The same steps the session takes: hold live, send replayed unless seen.
    for kind, n in ops:
        ident = f"id{n:04d}"
        if kind == "live":
            merge.hold(Keyed(id=ident, position=_pos(n), item=n))
        else:
            merge.replayed(ident)
            if window.add(ident, n):
                sent.append(n)
    replay_part = list(sent)
    for keyed in merge.release():
        if window.add(keyed.id, keyed.item):
            sent.append(keyed.item)
    live_ids = {n for kind, n in ops if kind == "live"}
    expected = (set(stored) | live_ids) - already
    assert len(sent) == len(set(sent)), "an id was sent twice"
    assert expected <= set(sent) <= set(stored) | live_ids, "an id was lost or invented"
    if window_size >= len(already) + len(stored) + len(live_ids):
        # Only a window too small to remember what this session sent lets one again.
        assert set(sent) == expected, "an id this session sent came again"
    assert replay_part == sorted(replay_part), "the replay is in storage order"
    assert set(live_extra) - already <= set(sent), (
        "a notification stored after the replay read was lost"
    )


def test_a_live_copy_of_a_replayed_id_is_dropped_while_the_merge_remembers_it() -> None:
    """The merge remembers the last ``limit`` replayed ids; older ones may come again."""
    merge: ReplayMerge[str] = ReplayMerge(Position(time_us=0, key=""), limit=2)
    for n in (1, 2, 3):
        merge.replayed(f"id{n:04d}")
    merge.hold(Keyed(id="id0003", position=_pos(3), item="again 3"))  # remembered: dropped
    merge.hold(Keyed(id="id0001", position=_pos(1), item="again 1"))  # forgotten: held
    assert len(merge) == 1
    assert [keyed.item for keyed in merge.release()] == ["again 1"]


def test_a_live_notification_behind_the_cursor_is_released_not_dropped() -> None:
    """A retried notification keeps its place in the inbox order, so it can
    arrive behind a client's cursor without the client ever having had it."""
    merge: ReplayMerge[str] = ReplayMerge(_pos(10), limit=10)
    merge.hold(Keyed(id="id0004", position=_pos(4), item="late retry of 4"))
    merge.hold(Keyed(id="id0011", position=_pos(11), item="new 11"))
    assert [keyed.item for keyed in merge.release()] == ["late retry of 4", "new 11"]
