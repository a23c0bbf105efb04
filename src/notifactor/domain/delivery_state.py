"""Delivery states, their order, and the merge rule that makes writes order-independent.

A delivery's status is written by many actors (dispatcher, retry scheduler,
gateways) and the writes can arrive at storage in any order and any number of
times. Instead of reading before writing, every store resolves concurrent writes
with the same rule, :func:`merge`, which is a join on a total order: the result
never depends on arrival order, replays change nothing, and a state never moves
backwards.

The lifecycle (which transitions the pipeline makes) is a partial order::

    accepted ─▶ pending ─▶ retrying ─▶ dead
       │           │  ▲        │  ▲      │ (only through a DLQ replay)
       │           │  └────────┘  │      ▼
       └───────────┴─────────▶ delivered ─▶ acked

Storage linearises it by *rank*::

    accepted(0) < pending(1) < retrying(2) < dead(3) < delivered(4) < acked(5)

``dead`` ranks below ``delivered`` on purpose: a dead letter that an operator
replays and that then reaches a client reports ``delivered``/``acked``; a
``retrying`` that arrives late never hides ``dead``. ``acked`` is the top: a
client saying it has the notification is the strongest evidence there is.

A stored notification is ``pending`` before any status is written for it
(SPEC §4: pending means stored, awaiting a live session), so the first
attempt of the dispatcher stores the notification alone: stores read a
missing status as :data:`STORED_STATE` after :data:`STORED_ATTEMPTS` attempt,
and never show fewer attempts than that (:func:`attempts_read`).
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

#: Bits reserved for the event time in a write timestamp. 2**53 microseconds is
#: about 285 years after the Unix epoch.
EVENT_TIME_BITS = 53
_EVENT_TIME_MASK = (1 << EVENT_TIME_BITS) - 1


class DeliveryState(enum.StrEnum):
    """Where one notification stands for one recipient (SPEC §4, `status`)."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    RETRYING = "retrying"
    DEAD = "dead"
    DELIVERED = "delivered"
    ACKED = "acked"

    @property
    def rank(self) -> int:
        """Position in the storage order; a higher rank always wins a merge."""
        return _RANK[self]

    @property
    def is_terminal(self) -> bool:
        """True when the pipeline makes no further transition on its own."""
        return self in (DeliveryState.ACKED, DeliveryState.DEAD)


#: The state of a stored notification that no status was written for.
STORED_STATE: Final = DeliveryState.PENDING
#: Its attempts: the dispatcher's first attempt is what stored it.
STORED_ATTEMPTS: Final = 1


def attempts_read(written: int | None) -> int:
    """The attempts a reader shows for a stored notification, given those written.

    Storing it was an attempt, so the count never reads below
    :data:`STORED_ATTEMPTS`, whatever the status rows carry (the WebSocket
    edge's ``delivered``/``acked`` updates count no attempt: 0). It is what
    :func:`merge` of the written status with the implicit stored one gives,
    so the count a reader sees never goes backwards.
    """
    return max(written or 0, STORED_ATTEMPTS)


_RANK: dict[DeliveryState, int] = {state: rank for rank, state in enumerate(DeliveryState)}

_TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.ACCEPTED: frozenset(
        {DeliveryState.PENDING, DeliveryState.RETRYING, DeliveryState.DELIVERED}
    ),
    DeliveryState.PENDING: frozenset(
        {DeliveryState.RETRYING, DeliveryState.DELIVERED, DeliveryState.DEAD}
    ),
    DeliveryState.RETRYING: frozenset(
        {DeliveryState.RETRYING, DeliveryState.DELIVERED, DeliveryState.DEAD}
    ),
    DeliveryState.DELIVERED: frozenset({DeliveryState.ACKED}),
    # Terminal for the pipeline; an operator's DLQ replay may still deliver it.
    DeliveryState.DEAD: frozenset({DeliveryState.DELIVERED, DeliveryState.ACKED}),
    DeliveryState.ACKED: frozenset(),
}


def may_follow(previous: DeliveryState, following: DeliveryState) -> bool:
    """Whether the pipeline may move a delivery from ``previous`` to ``following``.

    ``retrying`` may follow itself (one more failed attempt). Every allowed
    transition goes up in rank, so the storage order is a linear extension of
    the lifecycle and a legal sequence of writes is never undone by a merge.
    """
    return following in _TRANSITIONS[previous]


@attrs.frozen(kw_only=True)
class DeliveryStatus:
    """The stored status of one delivery: what :func:`merge` combines.

    Attributes:
        state: the winning state.
        event_time_us: when the winning event happened (microseconds since
            the epoch); becomes ``updated_at``.
        last_error: error text of the winning event, ``""`` when none. The
            empty string instead of ``None`` keeps Cassandra from writing a
            tombstone, which would win timestamp ties against any value.
        attempts: delivery attempts so far; merged by ``max`` on its own,
            independent of which state wins.
    """

    state: DeliveryState
    event_time_us: int
    last_error: str = ""
    attempts: int = 0

    @property
    def order_key(self) -> tuple[int, int, str]:
        """Total order of the state part: rank, then event time, then error text."""
        return (self.state.rank, self.event_time_us, self.last_error)


def merge(a: DeliveryStatus, b: DeliveryStatus) -> DeliveryStatus:
    """Combine two statuses of the same delivery; commutative, associative, idempotent.

    The state, its event time and its error come from whichever side has the
    greater :attr:`DeliveryStatus.order_key`; ``attempts`` is the maximum of
    both. Cassandra reaches the same result with last-write-wins and
    :func:`write_timestamp`; SQLite with a conditional upsert.
    """
    winner = a if a.order_key >= b.order_key else b
    attempts = max(a.attempts, b.attempts)
    if winner.attempts == attempts:
        return winner
    return attrs.evolve(winner, attempts=attempts)


def write_timestamp(state: DeliveryState, event_time_us: int) -> int:
    """The Cassandra write timestamp for a state cell written at ``event_time_us``.

    ``rank << 53 | event_time_us``: a higher-ranked state always carries a larger
    timestamp than a lower-ranked one, whatever the event times, and within a
    rank the later event wins. Equal timestamps mean equal (rank, event time);
    Cassandra then keeps the greater cell value, which is what :func:`merge`
    does with ``last_error``.

    Raises:
        ValueError: the event time is negative or does not fit in 53 bits.
    """
    if not 0 <= event_time_us <= _EVENT_TIME_MASK:
        raise ValueError(f"event time out of range: {event_time_us}")
    return (state.rank << EVENT_TIME_BITS) | event_time_us


def attempts_timestamp(attempts: int) -> int:
    """The Cassandra write timestamp for the ``attempts`` cell: the count itself.

    Written in its own statement so that the larger count wins regardless of
    which state wins (``attempts`` is max-merged).
    """
    if attempts < 0:
        raise ValueError(f"attempts must be >= 0: {attempts}")
    return attempts


#: States of a notification no session has been written yet: what a resume's
#: look back, and the catch-up after a lost presence, send again.
NEVER_WRITTEN: Final = frozenset({DeliveryState.PENDING, DeliveryState.RETRYING})
