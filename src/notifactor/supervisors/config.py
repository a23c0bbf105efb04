"""The ``[supervision]`` section of the configuration, as frozen value types.

Operators tune the shape and failure tolerance of the running tree here, not
in code: which restart strategy each subtree uses, how many restarts it
tolerates in a window before giving up and escalating, how long a restarted
child waits (backoff), how long a child gets to stop, how deep mailboxes are
and how large dynamic pools may grow.

Every class is valid with no arguments, so ``SupervisionConfig()`` is the
default tree. Subtrees whose defaults differ (``root``, ``dispatcher``,
``sessions``, ``consumers``) have classes of their own, so a table that sets
some keys keeps that subtree's defaults for the others. Validators raise ``ValueError`` with a short human reason; the
configuration loader turns that into a one-line ``ConfigError(key, reason)``.
The values are plain ``str``/``int``/``float`` (not enums or literals) so that
TOML values and environment strings structure with cattrs without surprises,
and a wrong value fails with our own reason rather than a library message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import attrs

from notifactor.errors import FieldValueError

STRATEGIES: Final = ("one_for_one", "one_for_all", "rest_for_one")
"""Restart strategies a static subtree accepts (see ``docs/supervision.md``)."""

RESTART_TYPES: Final = ("permanent", "transient", "temporary")
"""Restart types a dynamic pool's children accept."""


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, _attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)} (got {value!r})")

    return check


def _required(value: str, reason: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, _attribute: attrs.Attribute[Any], got: Any) -> None:
        if got != value:
            raise ValueError(f"must be {value}: {reason} (got {got!r})")

    return check


def _number(value: Any) -> int | float:
    # bool is an int subclass; ``intensity = true`` in TOML is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number (got {value!r})")
    # An infinite budget or window never ends: a stop that never gives up, a
    # restart history that never forgets. "1e400" reads as inf.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number (got {value!r})")
    return value


def _positive(_instance: Any, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if not _number(value) > 0:
        raise ValueError(f"must be > 0 (got {value!r})")


def _non_negative(_instance: Any, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if not _number(value) >= 0:
        raise ValueError(f"must be >= 0 (got {value!r})")


def _fraction(_instance: Any, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if not 0 <= _number(value) <= 1:
        raise ValueError(f"must be between 0 and 1 (got {value!r})")


@attrs.frozen(kw_only=True)
class BaseSubtreeConfig:
    """Knobs every supervisor has, static or dynamic.

    Attributes:
        intensity: restarts tolerated within ``period_s``; one more and the
            supervisor stops all its children and escalates to its parent.
            ``0`` means "never restart, escalate on the first crash".
        period_s: length of the sliding window the restarts are counted in.
        backoff_min_s: delay before the first restart of a crashed child.
        backoff_max_s: cap of the delay, which doubles on each consecutive
            crash of the same child.
        backoff_jitter: random spread of each delay, as a fraction: ``0.2``
            makes each delay up to 20 % shorter, so that many children
            crashing on the same cause do not restart in lockstep.
        backoff_reset_s: a child that has run this long without crashing
            starts again from ``backoff_min_s``.
        shutdown_s: how long each child gets to stop gracefully before it is
            cancelled outright.
        mailbox_size: capacity of each actor mailbox in this subtree; a full
            mailbox makes senders wait (backpressure).
    """

    intensity: int = attrs.field(default=3, validator=_non_negative)
    period_s: float = attrs.field(default=5.0, validator=_positive)
    backoff_min_s: float = attrs.field(default=0.1, validator=_non_negative)
    backoff_max_s: float = attrs.field(default=10.0, validator=_non_negative)
    backoff_jitter: float = attrs.field(default=0.2, validator=_fraction)
    backoff_reset_s: float = attrs.field(default=30.0, validator=_positive)
    shutdown_s: float = attrs.field(default=5.0, validator=_positive)
    mailbox_size: int = attrs.field(default=1024, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError(
                f"backoff_min_s must be <= backoff_max_s "
                f"(got {self.backoff_min_s} > {self.backoff_max_s})"
            )


@attrs.frozen(kw_only=True)
class SubtreeConfig(BaseSubtreeConfig):
    """A static supervisor: a fixed, ordered list of children.

    Attributes:
        strategy: what else restarts when one child crashes:
            ``one_for_one`` (only that child), ``one_for_all`` (every child),
            ``rest_for_one`` (that child and the ones started after it).
    """

    strategy: str = attrs.field(default="one_for_one", validator=_one_of(STRATEGIES))


@attrs.frozen(kw_only=True)
class DynamicSubtreeConfig(BaseSubtreeConfig):
    """A dynamic pool: children started and stopped by key at run time.

    Every crash is handled one-for-one: pool members are independent.

    Attributes:
        max_children: pool capacity; starting one more fails with
            ``PoolFull`` so the caller can refuse the work (e.g. close a
            WebSocket) instead of exhausting memory.
        child_restart: default restart type of a pool member, used when the
            caller does not pass one.
    """

    max_children: int = attrs.field(default=10_000, validator=_positive)
    child_restart: str = attrs.field(default="transient", validator=_one_of(RESTART_TYPES))


@attrs.frozen(kw_only=True)
class RootSubtreeConfig(SubtreeConfig):
    """The root: later siblings (the services) depend on earlier ones (the
    embedded Redis), so when an early one restarts, the rest restart too."""

    strategy: str = attrs.field(default="rest_for_one", validator=_one_of(STRATEGIES))
    period_s: float = attrs.field(default=30.0, validator=_positive)
    shutdown_s: float = attrs.field(default=10.0, validator=_positive)


@attrs.frozen(kw_only=True)
class DispatcherSubtreeConfig(SubtreeConfig):
    """The dispatcher: its strategy is ``rest_for_one`` and nothing else.

    The consumer pool comes back empty when it restarts; only the partition
    assigner, started after it, fills it again, so it must restart with the
    pool. ``one_for_one`` would leave the partitions without consumers, and
    ``one_for_all`` would stop every consumer whenever the retry scheduler
    crashes. The key is kept so that a configuration that names the
    strategy stays valid.
    """

    strategy: str = attrs.field(
        default="rest_for_one",
        validator=[
            _one_of(STRATEGIES),
            _required(
                "rest_for_one",
                "the partition assigner must restart after the consumer pool to refill it",
            ),
        ],
    )


@attrs.frozen(kw_only=True)
class SessionsPoolConfig(DynamicSubtreeConfig):
    """The session pool: one session per WebSocket, ``temporary`` and nothing else.

    A session dies with its socket; restarting it would talk to nobody. The
    key is kept so that a configuration that names it stays valid.
    """

    child_restart: str = attrs.field(
        default="temporary",
        validator=[
            _one_of(RESTART_TYPES),
            _required("temporary", "a session ends with its WebSocket and cannot be restarted"),
        ],
    )
    mailbox_size: int = attrs.field(default=256, validator=_positive)
    intensity: int = attrs.field(default=100, validator=_non_negative)


@attrs.frozen(kw_only=True)
class ConsumersPoolConfig(DynamicSubtreeConfig):
    """The consumer pool: a partition must always have a consumer."""

    child_restart: str = attrs.field(default="permanent", validator=_one_of(RESTART_TYPES))
    max_children: int = attrs.field(default=1024, validator=_positive)


@attrs.frozen(kw_only=True)
class SupervisionConfig:
    """The whole ``[supervision]`` section.

    Attributes:
        partitions: number of stream partitions, hence partition consumers.
        root: the top of the tree (embedded Redis, storage, gateway, dispatcher).
        gateway: HTTP and WebSocket listeners and the session pool.
        dispatcher: consumers, retry scheduler and storage writers.
        sessions: the pool of session actors, one per WebSocket.
        consumers: the pool of partition consumers, one per partition.
        writers: the storage writer subtree.
    """

    partitions: int = attrs.field(default=16, validator=_positive)
    root: RootSubtreeConfig = attrs.field(factory=RootSubtreeConfig)
    gateway: SubtreeConfig = attrs.field(factory=SubtreeConfig)
    dispatcher: DispatcherSubtreeConfig = attrs.field(factory=DispatcherSubtreeConfig)
    sessions: SessionsPoolConfig = attrs.field(factory=SessionsPoolConfig)
    consumers: ConsumersPoolConfig = attrs.field(factory=ConsumersPoolConfig)
    writers: SubtreeConfig = attrs.field(factory=SubtreeConfig)

    def __attrs_post_init__(self) -> None:
        if self.partitions > self.consumers.max_children:
            raise FieldValueError(
                "partitions",
                f"must be <= consumers.max_children "
                f"(got {self.partitions} > {self.consumers.max_children})",
            )
