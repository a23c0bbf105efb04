"""What one WebSocket session has sent, and merging a resume replay with live traffic.

Pure and synchronous; the session actor drives it.

* :class:`SentWindow` remembers the ids a session wrote recently (bounded),
  so a notification routed twice (a retry, a dispatcher takeover) reaches the
  client once, and an ``ack`` can be checked against what this session got.
* :class:`ReplayMerge` runs while a ``resume`` replays from storage. Live
  notifications that arrive meanwhile are held back; a replayed id that is
  also held back is dropped from the held set (the replay sends it, in
  storage order), and so is a live copy of an id the replay already sent;
  when the replay ends, what is still held is released, in arrival order.
  That includes a live item at or before the client's cursor: a retried or
  replayed notification keeps its place in the inbox order, so one the
  client never had can arrive behind its cursor, and dropping it would lose
  it. Nothing is lost (every live id is either replayed or released) and
  nothing is doubled within the session (each id passes the
  :class:`SentWindow` once, and the merge remembers the last ``limit``
  replayed ids, however long the replay, even those the window has
  forgotten). A live item behind the cursor that an earlier session already
  delivered reaches the client again: delivery is at least once.

  That memory is bounded, like the held items: a live copy of an id that
  was replayed more than ``limit`` ids earlier in the same replay (and is
  no longer in the window) may reach the client a second time. Delivery is
  at least once; an id is never lost for it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

import attrs

from notifactor.domain.cursor import Position

T = TypeVar("T")
V = TypeVar("V")


class ReplayOverflow(Exception):
    """More live notifications arrived during a replay than the session may hold."""


class SentWindow(Generic[V]):
    """The last ``capacity`` ids sent, each with a value (its ``created_at``).

    Args:
        capacity: ids remembered; the oldest is forgotten first.
    """

    __slots__ = ("_capacity", "_ids")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, V] = OrderedDict()

    def __contains__(self, ident: object) -> bool:
        return ident in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, ident: str) -> V | None:
        return self._ids.get(ident)

    def ids(self) -> frozenset[str]:
        """The ids remembered now."""
        return frozenset(self._ids)

    def add(self, ident: str, value: V) -> bool:
        """Remember ``ident``; ``False`` when it was already there (a duplicate)."""
        if ident in self._ids:
            return False
        self._ids[ident] = value
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


@attrs.frozen(kw_only=True)
class Keyed(Generic[T]):
    """An item with its id and its place in the user's inbox order."""

    id: str
    position: Position
    item: T


class ReplayMerge(Generic[T]):
    """Holds live items back while a replay after ``since`` runs.

    Args:
        since: the client's cursor position (where the replay starts).
        limit: most live items held at once (over it: :class:`ReplayOverflow`),
            and most replayed ids remembered (the oldest is forgotten first).
    """

    __slots__ = ("_held", "_limit", "_replayed", "since")

    def __init__(self, since: Position, limit: int) -> None:
        self.since = since
        self._limit = limit
        # A plain dict keeps arrival order; both stay small or absent for the
        # opening hold of a session that never resumes (most of them).
        self._held: dict[Hashable, Keyed[T]] = {}
        self._replayed: OrderedDict[str, None] | None = None

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, live: Keyed[T]) -> None:
        """Keep a live item until :meth:`release`.

        A repeat of a held id is dropped, and so is an id this replay already sent.
        """
        if live.id in self._held or (self._replayed is not None and live.id in self._replayed):
            return
        if len(self._held) >= self._limit:
            raise ReplayOverflow(f"more than {self._limit} live notifications during a resume")
        self._held[live.id] = live

    def replayed(self, ident: str) -> None:
        """The replay is sending ``ident``: it need not be released later."""
        self._held.pop(ident, None)
        if self._replayed is None:
            self._replayed = OrderedDict()
        self._replayed[ident] = None
        if len(self._replayed) > self._limit:
            self._replayed.popitem(last=False)

    def release(self) -> list[Keyed[T]]:
        """The held items, in arrival order; the merge is then empty."""
        held = list(self._held.values())
        self._held.clear()
        self._replayed = None
        return held
