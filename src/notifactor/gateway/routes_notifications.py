"""``POST /v1/notifications``, ``POST /v1/notifications:batch``, ``GET /v1/notifications/{id}``."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from notifactor.auth.verify import SCOPE_READ, SCOPE_WRITE, Principal
from notifactor.domain.envelope import Envelope, trace_id_of
from notifactor.domain.ids import is_notification_id, new_notification_id
from notifactor.domain.partitioning import partition_for
from notifactor.domain.rate_limit import MICROS_PER_DAY, RateRule, whole_seconds
from notifactor.domain.rfc3339 import format_rfc3339
from notifactor.gateway import problems
from notifactor.gateway.context import Gateway, require_scope
from notifactor.gateway.http import Request, Response, json_response
from notifactor.gateway.metrics import (
    NOTIFICATIONS_INGESTED,
    NOTIFICATIONS_REJECTED,
    RATE_LIMIT_REJECTIONS,
    tenant_label,
)
from notifactor.gateway.problems import FieldError, Problem, ProblemError
from notifactor.gateway.validation import (
    NotificationInput,
    batch_item_key,
    check_idempotency_key,
    validate_notification,
)
from notifactor.observability.log_context import bind_log_fields
from notifactor.observability.tracing import ingest_span, mark_error, traceparent_of
from notifactor.ports.ingest import (
    Accepted,
    IngestItem,
    IngestResult,
    IngestUnavailable,
    Limited,
    Outcome,
    Shed,
)
from notifactor.ports.notification_store import StoreError

log = logging.getLogger("notifactor.gateway")

SHED_RETRY_AFTER_S = 1
UNAVAILABLE_RETRY_AFTER_S = problems.REDIS_RETRY_AFTER_S


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    if (reason := check_idempotency_key(value)) is not None:
        raise ProblemError(
            problems.bad_request(
                "Invalid Idempotency-Key header.",
                [FieldError(field="Idempotency-Key", message=reason)],
            )
        )
    return value


def _body_tenant_mismatch(body: object, principal: Principal) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("tenant_id"), str)
        and body["tenant_id"] != principal.tenant_id
    )


def _envelope(
    gateway: Gateway, item: NotificationInput, traceparent: str, key: str | None
) -> Envelope:
    return Envelope(
        id=new_notification_id(),
        tenant_id=item.tenant_id,
        user_id=item.user_id,
        channel=item.channel,
        content=item.content,
        priority=item.priority,
        metadata=item.metadata,
        accepted_at=datetime.now(UTC),
        traceparent=traceparent,
        idempotency_key=key,
    )


def rate_headers(
    rule: RateRule, result: IngestResult, limited: Sequence[Limited] = ()
) -> list[tuple[str, str]]:
    """``RateLimit-*`` after an ingest call, and ``Retry-After`` when items were ``limited``.

    The headers describe the limit closer to running out: the burst (which
    refills at the tenant's rate) or the daily quota (which resets at UTC
    midnight), so ``RateLimit-Reset`` is when that limit is whole again.
    ``Retry-After`` is the shortest wait among the limited items (a batch
    sets its own, from every refused item's ``retry_after``).
    """
    limit, remaining, reset_us = _binding_limit(rule, result)
    headers = [
        ("ratelimit-limit", str(limit)),
        ("ratelimit-remaining", str(remaining)),
        ("ratelimit-reset", str(whole_seconds(reset_us))),
    ]
    if limited:
        wait_us = min(outcome.retry_after_us for outcome in limited)
        headers.insert(0, ("retry-after", str(max(1, whole_seconds(wait_us)))))
    return headers


def _binding_limit(rule: RateRule, result: IngestResult) -> tuple[int, int, int]:
    """``(limit, remaining, reset_us)`` of the burst or of the daily quota, whichever is lower."""
    ahead = max(0, result.tat_us - result.now_us)
    by_rate = max(0, (rule.tolerance_us - ahead) // rule.emission_us)
    if rule.daily_quota > 0:
        quota_left = max(0, rule.daily_quota - result.used_today)
        if quota_left <= by_rate:
            to_midnight = (result.now_us // MICROS_PER_DAY + 1) * MICROS_PER_DAY - result.now_us
            return rule.daily_quota, quota_left, to_midnight
    return rule.burst, by_rate, ahead


def _limited(outcome: Outcome) -> list[Limited]:
    return [outcome] if isinstance(outcome, Limited) else []


def _item_error(problem: Problem) -> dict[str, Any]:
    """A refused batch item's problem, with ``retry_after`` (seconds) when it has a wait."""
    body = problem.to_dict()
    retry_after = dict(problem.headers).get("retry-after")
    if retry_after is not None:
        body["retry_after"] = int(retry_after)
    return body


def _outcome_problem(
    gateway: Gateway, tenant_id: str, outcome: Limited | Shed, headers: list[tuple[str, str]]
) -> Problem:
    if isinstance(outcome, Shed):
        NOTIFICATIONS_REJECTED.labels(reason="overloaded").inc()
        return problems.overloaded(
            "The delivery pipeline is saturated; retry later.", SHED_RETRY_AFTER_S
        )
    NOTIFICATIONS_REJECTED.labels(reason=outcome.reason).inc()
    tenant = tenant_label(gateway.config.observability.tenant_label_allowlist, tenant_id)
    RATE_LIMIT_REJECTIONS.labels(reason=outcome.reason, tenant=tenant).inc()
    detail = (
        "The tenant's daily quota is exhausted."
        if outcome.reason == "quota"
        else "The tenant's rate limit is exceeded."
    )
    return problems.rate_limited(detail, headers)


async def _ingest(
    gateway: Gateway, tenant_id: str, rule: RateRule, items: list[IngestItem]
) -> IngestResult:
    """The ingest call; Redis unavailable or too slow is a 503 with ``Retry-After``, not a 500.

    The bus bounds the call in time (``IngestSettings.call_timeout_s``, the
    gateway's :data:`~notifactor.gateway.problems.REDIS_DEADLINE_S`). A call
    past it is abandoned; Redis may still run it, so the client retries with
    the same ``Idempotency-Key`` when a duplicate matters.
    """
    try:
        return await gateway.ingest.ingest(tenant_id, rule, items)
    except IngestUnavailable as error:
        NOTIFICATIONS_REJECTED.labels(reason="unavailable").inc()
        log.warning("ingest unavailable: %s", error, extra={"event": "ingest_unavailable"})
        detail = "Ingestion is unavailable; retry later."
        raise ProblemError(problems.unavailable(detail, UNAVAILABLE_RETRY_AFTER_S)) from None


async def post_notification(gateway: Gateway, request: Request) -> Response:
    """Accept one notification: 202 with its id, or a problem."""
    principal = gateway.authenticate(request)
    require_scope(principal, SCOPE_WRITE)
    key = _idempotency_key(request)
    body = await request.read_json(gateway.config.limits.body_max_bytes)
    if _body_tenant_mismatch(body, principal):
        raise ProblemError(problems.forbidden("The body's tenant_id is not the token's tenant."))
    checked = validate_notification(body, gateway.config.limits)
    if isinstance(checked, list):
        NOTIFICATIONS_REJECTED.labels(reason="invalid").inc()
        raise ProblemError(problems.validation_failed(checked))
    incoming = request.headers.get("traceparent")
    with ingest_span("gateway.ingest", incoming, {"notifactor.batch_size": 1}) as span:
        traceparent = traceparent_of(span, incoming)
        bind_log_fields(trace_id=trace_id_of(traceparent))
        envelope = _envelope(gateway, checked, traceparent, key)
        span.set_attribute("notifactor.notification_id", envelope.id)
        rule = gateway.rate_rule(principal.tenant_id)
        item = IngestItem(
            envelope=envelope,
            partition=partition_for(envelope.tenant_id, envelope.user_id, gateway.partitions),
            idempotency_key=key,
        )
        result = await _ingest(gateway, principal.tenant_id, rule, [item])
        (outcome,) = result.outcomes
        headers = rate_headers(rule, result, _limited(outcome))
        if not isinstance(outcome, Accepted):
            mark_error(span, "limited" if isinstance(outcome, Limited) else "shed")
            raise ProblemError(_outcome_problem(gateway, principal.tenant_id, outcome, headers))
        bind_log_fields(notification_id=outcome.id)
        span.set_attribute("notifactor.duplicate", outcome.duplicate)
    if outcome.duplicate:
        gateway.note_accepted(principal, "notifications", (), (outcome.id,))
    else:
        NOTIFICATIONS_INGESTED.inc()
        gateway.note_accepted(principal, "notifications", (outcome.id,))
    headers.append(("location", f"/v1/notifications/{outcome.id}"))
    return json_response(202, {"id": outcome.id, "status": "accepted"}, headers)


async def post_batch(gateway: Gateway, request: Request) -> Response:
    """Accept up to ``batch_max_items`` notifications in one round trip to Redis."""
    principal = gateway.authenticate(request)
    require_scope(principal, SCOPE_WRITE)
    key = _idempotency_key(request)
    limits = gateway.config.limits
    body = await request.read_json(limits.batch_body_max_bytes)
    items = _batch_items(body, limits.batch_max_items)
    incoming = request.headers.get("traceparent")
    with ingest_span(
        "gateway.ingest_batch", incoming, {"notifactor.batch_size": len(items)}
    ) as span:
        traceparent = traceparent_of(span, incoming)
        bind_log_fields(trace_id=trace_id_of(traceparent))
        return await _ingest_batch(gateway, principal, key, items, traceparent)


async def _ingest_batch(
    gateway: Gateway,
    principal: Principal,
    key: str | None,
    items: list[object],
    traceparent: str,
) -> Response:
    limits = gateway.config.limits
    results: list[dict[str, Any] | None] = [None] * len(items)
    pending: list[tuple[int, IngestItem]] = []
    refused: Counter[tuple[int, str]] = Counter()
    for index, raw in enumerate(items):
        if _body_tenant_mismatch(raw, principal):
            problem = problems.forbidden("The item's tenant_id is not the token's tenant.")
            refused[problem.status, problem.detail] += 1
            results[index] = {"error": problem.to_dict()}
            continue
        checked = validate_notification(raw, limits)
        if isinstance(checked, list):
            NOTIFICATIONS_REJECTED.labels(reason="invalid").inc()
            results[index] = {"error": problems.validation_failed(checked).to_dict()}
            continue
        # The envelope records ``key#index`` for people; the idempotency record
        # uses a key no single request's Idempotency-Key can equal.
        envelope = _envelope(
            gateway, checked, traceparent, None if key is None else f"{key}#{index}"
        )
        partition = partition_for(envelope.tenant_id, envelope.user_id, gateway.partitions)
        item_key = None if key is None else batch_item_key(key, index)
        pending.append(
            (index, IngestItem(envelope=envelope, partition=partition, idempotency_key=item_key))
        )
    rule = gateway.rate_rule(principal.tenant_id)
    headers: list[tuple[str, str]] = []
    accepted: list[str] = []
    duplicates: list[str] = []
    if pending:
        result = await _ingest(gateway, principal.tenant_id, rule, [i for _, i in pending])
        headers = rate_headers(rule, result)
        for (index, _), outcome in zip(pending, result.outcomes, strict=True):
            if isinstance(outcome, Accepted):
                if outcome.duplicate:
                    duplicates.append(outcome.id)
                else:
                    NOTIFICATIONS_INGESTED.inc()
                    accepted.append(outcome.id)
                results[index] = {"id": outcome.id}
            else:
                problem = _outcome_problem(
                    gateway,
                    principal.tenant_id,
                    outcome,
                    rate_headers(rule, result, _limited(outcome)),
                )
                refused[problem.status, problem.detail] += 1
                results[index] = {"error": _item_error(problem)}
    headers[:0] = _batch_retry_after(results)
    if accepted or duplicates:
        gateway.note_accepted(principal, "batch", accepted, duplicates)
    caller = (principal.tenant_id, principal.subject)
    for (status, reason), count in refused.items():
        gateway.note_rejected(caller, "batch", status, reason, count)
    return json_response(202, {"results": results}, headers)


def _batch_retry_after(results: list[dict[str, Any] | None]) -> list[tuple[str, str]]:
    """``Retry-After`` of a batch: the shortest ``retry_after`` among its refused items, if any."""
    waits = [
        result["error"]["retry_after"]
        for result in results
        if result is not None and "retry_after" in result.get("error", {})
    ]
    return [("retry-after", str(min(waits)))] if waits else []


def _batch_items(body: object, max_items: int) -> list[object]:
    if not isinstance(body, dict):
        raise ProblemError(
            problems.validation_failed([FieldError(field="$", message="must be a JSON object")])
        )
    errors = [
        FieldError(field=name, message="unknown field")
        for name in sorted(body)
        if name != "notifications"
    ]
    items = body.get("notifications")
    if items is None:
        errors.append(FieldError(field="notifications", message="is required"))
    elif not isinstance(items, list):
        errors.append(FieldError(field="notifications", message="must be an array"))
    elif not 1 <= len(items) <= max_items:
        errors.append(
            FieldError(
                field="notifications", message=f"must hold 1..{max_items} items, got {len(items)}"
            )
        )
    if errors:
        raise ProblemError(problems.validation_failed(errors))
    assert isinstance(items, list)
    return items


async def get_notification(gateway: Gateway, request: Request) -> Response:
    """The notification with its status; 404 for unknown ids and other tenants' ids.

    403 for another user's notification when the token lacks ``notifications:read``.
    """
    principal = gateway.authenticate(request)
    notification_id = request.path_params["id"]
    if not is_notification_id(notification_id):
        raise ProblemError(problems.not_found("No such notification."))
    view: dict[str, Any] | None = None
    store_failed = False
    try:
        stored = await gateway.store.get_notification(principal.tenant_id, notification_id)
    except StoreError as error:
        log.warning(
            "storage read failed; falling back to the accepted record: %s",
            error,
            extra={"event": "storage_read_failed", "reason": str(error)},
        )
        stored, store_failed = None, True
    if stored is not None:
        n = stored.notification
        view = {
            "id": n.id,
            "tenant_id": n.tenant_id,
            "user_id": n.user_id,
            "channel": n.channel,
            "content": n.content,
            "priority": n.priority,
            "metadata": n.metadata,
            "created_at": format_rfc3339(n.created_at),
            "updated_at": format_rfc3339(stored.updated_at),
            "status": stored.status.value,
            "attempts": stored.attempts,
            "last_error": stored.last_error,
        }
    else:
        # Not in storage (yet), and the accepted record cannot be read in
        # time: a 404 here could be wrong right after a 202 (SPEC §4).
        detail = "Redis is unavailable; retry later."
        try:
            with problems.redis_deadline(detail):
                envelope = await gateway.ingest.get_accepted(principal.tenant_id, notification_id)
        except IngestUnavailable:
            log.warning("accepted record unreadable", exc_info=True)
            raise ProblemError(problems.unavailable(detail, problems.REDIS_RETRY_AFTER_S)) from None
        if envelope is not None:
            accepted_at = format_rfc3339(envelope.accepted_at)
            view = {
                "id": envelope.id,
                "tenant_id": envelope.tenant_id,
                "user_id": envelope.user_id,
                "channel": envelope.channel,
                "content": envelope.content,
                "priority": envelope.priority,
                "metadata": envelope.metadata,
                "created_at": accepted_at,
                "updated_at": accepted_at,
                "status": "accepted",
                "attempts": 0,
                "last_error": None,
            }
        elif store_failed:
            raise ProblemError(problems.overloaded("Storage is unavailable; retry later.", 1))
    if view is None or view["tenant_id"] != principal.tenant_id:
        raise ProblemError(problems.not_found("No such notification."))
    if not principal.has_scope(SCOPE_READ) and view["user_id"] != principal.subject:
        # SPEC §3: without the read scope a token reads only its own `sub`'s
        # notifications; another user's, of the same tenant, is a missing scope.
        raise ProblemError(
            problems.forbidden(f"Reading another user's notification needs the {SCOPE_READ} scope.")
        )
    return json_response(200, view)
