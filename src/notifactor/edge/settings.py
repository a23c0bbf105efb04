"""Tuning of the WebSocket edge (defaults suit production; tests shorten the times)."""

from __future__ import annotations

import math

import attrs

from notifactor.config import Config

DEFAULT_HEARTBEAT_S = 25.0


@attrs.frozen(kw_only=True)
class EdgeSettings:
    """Knobs of the listener, the sessions and the delivery consumer.

    Attributes:
        heartbeat_s: server ping period, announced in ``welcome``; a session
            silent (no frame, no pong) for two periods is closed (1008).
        outbox_size: frames queued for one socket; a live frame that finds it
            full closes the session with 1013 (slow consumer). Frames released
            from a hold (below) are queued beyond it.
        sent_window: ids per session remembered for de-duplication and acks.
        replay_page: rows per storage read during a resume.
        replay_hold_limit: live frames held back during the opening hold or one
            resume (over it: 1013); also the replayed ids a resume remembers to
            drop a live copy of one the window has forgotten.
        resume_lookback_s: a ``resume`` also sends what lies up to this long
            before its cursor and was never written to a socket (``pending``
            or ``retrying``): routed late, it sorts behind a newer cursor.
        resume_grace_s: live frames are held this long after ``welcome`` unless a
            ``resume`` comes first (other frames do not end the hold); the
            ``resume`` then merges them into the replay, in order.
        send_timeout_s: longest a single socket write may block before the
            client counts as gone (the connection is then dropped).
        close_timeout_s: bound on the close handshake.
        connect_timeout_s: bound on the HTTP upgrade request.
        presence_heartbeat_s: period of the gateway's presence heartbeat
            (a third of the presence TTL); it also refreshes the gateway's
            members of the cluster-wide tenant connection counts.
        admission_timeout_s: longest an upgrade waits for the cluster-wide
            connection count (Redis) before it is refused with 503; also the
            bound on a new session's presence registration after the 101
            (past it the session closes with 1013).
        consumer_count: entries per XREAD of the gateway delivery stream.
        writer_stall_s: while a session's outbox is half full, the delivery
            consumer waits for its writer before queueing more, so a burst
            bigger than the outbox reaches a client that reads; it stops
            waiting once the writer has been stuck in one socket write this
            long (a client that does not read then fills its outbox: 1013).
        pace_budget_s: the most the delivery consumer waits, in all, for one
            session's writer during one burst (until its outbox empties). A
            client that reads, but slower than the burst comes, stops being
            waited for then: it fills its outbox and is closed with 1013
            instead of slowing every other session of the gateway.
        consumer_block_ms: longest wait of one XREAD.
        janitor_interval_s: how often delivery streams of dead gateways are removed.
        stale_stream_ms: a dead gateway's stream untouched this long is removed.
        recorder_queue: delivery-state updates buffered before sessions wait.
        recorder_batch: most updates per storage-writer submission.
    """

    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    outbox_size: int = 256
    sent_window: int = 512
    replay_page: int = 200
    replay_hold_limit: int = 4096
    resume_grace_s: float = 0.5
    resume_lookback_s: float = 3600.0
    send_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    connect_timeout_s: float = 10.0
    presence_heartbeat_s: float = 10.0
    admission_timeout_s: float = 2.0
    consumer_count: int = 512
    writer_stall_s: float = 0.25
    pace_budget_s: float = 2.0
    consumer_block_ms: int = 1000
    janitor_interval_s: float = 300.0
    stale_stream_ms: int = 120_000
    recorder_queue: int = 8192
    recorder_batch: int = 512

    def __attrs_post_init__(self) -> None:
        if self.heartbeat_s <= 0 or self.send_timeout_s <= 0 or self.close_timeout_s <= 0:
            raise ValueError("heartbeat_s, send_timeout_s and close_timeout_s must be > 0")
        if min(self.outbox_size, self.sent_window, self.replay_page, self.recorder_queue) < 1:
            raise ValueError("sizes must be >= 1")

    @property
    def admission_ttl_ms(self) -> int:
        """How long a connection outlives its gateway's last heartbeat (3 heartbeats)."""
        return max(1, math.ceil(3 * self.presence_heartbeat_s * 1000))


def settings_from_config(config: Config) -> EdgeSettings:
    """The edge settings ``config`` asks for.

    A session has no mailbox (live frames go straight to its outbox), so the
    ``sessions`` pool's ``mailbox_size`` is the outbox's bound: the frames one
    socket may have queued before its client counts as too slow (1013).
    """
    return EdgeSettings(
        heartbeat_s=config.ws_heartbeat_s,
        outbox_size=config.supervision.sessions.mailbox_size,
    )
