"""Tuning of the dispatcher (defaults suit production; tests shorten the times)."""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from notifactor.config import Config
from notifactor.domain.retry_schedule import RetryPolicy


@attrs.frozen(kw_only=True)
class DispatcherSettings:
    """Knobs of the partition consumers and the retry scheduler.

    Attributes:
        read_count: entries per XREADGROUP (the batch processed concurrently).
        block_ms: longest wait of one XREADGROUP; also the tick of the
            claim and maintenance timers.
        claim_idle_ms: an entry pending this long with another consumer is
            taken over (XAUTOCLAIM). Must exceed ``attempt_timeout_s``.
        claim_interval_s: how often a consumer looks for idle entries.
        claim_count: entries per XAUTOCLAIM step.
        max_deliveries: an entry delivered more often than this is
            dead-lettered as ``poison``.
        attempt_timeout_s: bound on one delivery attempt (persist + route);
            exceeding it is a transient failure.
        dead_letter_timeout_s: bound on recording a dead letter in storage.
        maintenance_interval_s: how often acknowledged entries are trimmed,
            the lag gauge refreshed and stale consumers reaped.
        stale_consumer_idle_ms: a group member idle this long with nothing
            pending is removed from the group.
        retry_poll_s: how often the retry scheduler moves due retries back.
        retry_batch: retries moved per partition per script call.
        full_stream_patience_s: how long (in the sum of its deferral delays)
            an entry refused by a full delivery stream is deferred without
            spending attempts; 0 counts every refusal as a failed attempt.
        mark_delivered_on_route: record ``delivered`` once the notification
            is on a live gateway's delivery stream (until the WebSocket edge
            records it when it writes to a socket).
    """

    read_count: int = 64
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    claim_interval_s: float = 5.0
    claim_count: int = 64
    max_deliveries: int = 5
    attempt_timeout_s: float = 10.0
    dead_letter_timeout_s: float = 10.0
    maintenance_interval_s: float = 10.0
    stale_consumer_idle_ms: int = 3_600_000
    retry_poll_s: float = 0.25
    retry_batch: int = 256
    full_stream_patience_s: float = 900.0
    mark_delivered_on_route: bool = True

    def __attrs_post_init__(self) -> None:
        if self.claim_idle_ms <= self.attempt_timeout_s * 1000:
            raise ValueError("claim_idle_ms must exceed attempt_timeout_s")
        if self.max_deliveries < 1 or self.read_count < 1 or self.block_ms < 1:
            raise ValueError("max_deliveries, read_count and block_ms must be >= 1")
        if not math.isfinite(self.full_stream_patience_s) or self.full_stream_patience_s < 0:
            raise ValueError("full_stream_patience_s must be a finite number >= 0")


def settings_from_config(config: Config, *, mark_delivered_on_route: bool) -> DispatcherSettings:
    """The ``[dispatcher]`` section as settings; the bootstrap says who records ``delivered``."""
    section = config.dispatcher
    return DispatcherSettings(
        read_count=section.read_count,
        block_ms=section.block_ms,
        claim_idle_ms=section.claim_idle_ms,
        claim_interval_s=section.claim_interval_s,
        claim_count=section.claim_count,
        max_deliveries=section.max_deliveries,
        attempt_timeout_s=section.attempt_timeout_s,
        dead_letter_timeout_s=section.dead_letter_timeout_s,
        maintenance_interval_s=section.maintenance_interval_s,
        stale_consumer_idle_ms=section.stale_consumer_idle_ms,
        retry_poll_s=section.retry_poll_s,
        retry_batch=section.retry_batch,
        full_stream_patience_s=section.full_stream_patience_s,
        mark_delivered_on_route=mark_delivered_on_route,
    )


def retry_policy_for(config: Config) -> Callable[[str], RetryPolicy]:
    """The tenant policy lookup of ``config`` as retry policies."""

    def policy(tenant_id: str) -> RetryPolicy:
        tenant = config.tenant_policy(tenant_id)
        return RetryPolicy(
            max_attempts=tenant.max_attempts,
            base_ms=tenant.retry_base_ms,
            cap_ms=tenant.retry_cap_ms,
        )

    return policy
