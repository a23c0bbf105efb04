"""Admin DLQ endpoints (SPEC §4), scope ``admin``, the token's own tenant only.

* ``GET /v1/admin/dlq?limit=&cursor=&reason=`` — the tenant's dead letters,
  newest first: ``{"items": [...], "next_cursor": "..." | null}``; each item as
  printed by ``notifactor dlq list`` (``dlq_id``, ``notification_id``,
  ``reason``, ``attempts``, ``last_error``, ``first_attempt_at``,
  ``last_attempt_at``, ``dead_at``, ``trace_id``, ...).
* ``POST /v1/admin/dlq/replay`` — body ``{"ids": [...]}`` or a filter
  (``reason``, ``since``, ``until``), plus ``"dry_run": true|false`` (default
  false) and optional ``"rate_per_s"``; answers ``200`` with the replay report
  (``dry_run``, ``counts``, ``items[]`` with each ``action``). The filter is
  always narrowed to the token's tenant.

The handlers need a :class:`~notifactor.dispatcher.replay.ReplayService` on
the gateway context as ``gateway.dlq``; without one they answer 503. Redis
unreachable, or slower than the DLQ adapter's bound on one call, is a 503
``unavailable`` with ``Retry-After``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from notifactor.adapters.redis_dlq import DlqFilter, DlqRecord, DlqUnavailable, is_dlq_cursor
from notifactor.auth.verify import SCOPE_ADMIN
from notifactor.dispatcher.cli_dlq import record_json
from notifactor.dispatcher.replay import ReplayService
from notifactor.domain.dlq_entry import DlqReason
from notifactor.domain.rfc3339 import parse_rfc3339
from notifactor.gateway import problems
from notifactor.gateway.context import Gateway, require_scope
from notifactor.gateway.http import Request, Response, json_response
from notifactor.gateway.problems import FieldError, ProblemError
from notifactor.gateway.query import page_limit, query_values
from notifactor.ports.notification_store import TransientStoreError

log = logging.getLogger("notifactor.gateway")

LIST_PARAMS = frozenset({"limit", "cursor", "reason"})
REPLAY_FIELDS = frozenset({"ids", "reason", "since", "until", "dry_run", "rate_per_s"})
MAX_REPLAY_IDS = 1000
_REASONS = tuple(r.value for r in DlqReason)


def _service(gateway: Gateway) -> ReplayService:
    if gateway.dlq is None:
        raise ProblemError(problems.overloaded("The DLQ service is not available here.", 5))
    return gateway.dlq


def _parse_list_query(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    errors: list[FieldError] = []
    values = query_values(pairs, LIST_PARAMS, errors)
    parsed: dict[str, Any] = {
        "limit": page_limit(values, 50, errors),
        "cursor": None,
        "reason": None,
    }
    if "reason" in values:
        if values["reason"] not in _REASONS:
            errors.append(
                FieldError(field="reason", message=f"must be one of {', '.join(_REASONS)}")
            )
        parsed["reason"] = values["reason"]
    if "cursor" in values:
        if not is_dlq_cursor(values["cursor"]):
            errors.append(FieldError(field="cursor", message="not a cursor of this listing"))
        parsed["cursor"] = values["cursor"]
    if errors:
        raise ProblemError(problems.validation_failed(errors))
    return parsed


async def list_dlq(gateway: Gateway, request: Request) -> Response:
    """One page of the tenant's dead letters."""
    principal = gateway.authenticate(request)
    require_scope(principal, SCOPE_ADMIN)
    query = _parse_list_query(request.query())
    service = _service(gateway)
    where = DlqFilter(tenant_id=principal.tenant_id, reason=query["reason"])
    try:
        records, cursor = await service.list(where, limit=query["limit"], cursor=query["cursor"])
    except DlqUnavailable as error:
        raise _redis_unavailable(error) from None
    return json_response(200, {"items": [_item(r) for r in records], "next_cursor": cursor})


def _item(record: DlqRecord) -> dict[str, Any]:
    """A dead letter as ``dlq list`` prints it."""
    return record_json(record)


def _parse_replay(body: object, tenant_id: str) -> tuple[DlqFilter, bool, float]:
    if not isinstance(body, dict):
        raise ProblemError(
            problems.validation_failed([FieldError(field="$", message="must be a JSON object")])
        )
    errors = [
        FieldError(field=name, message="unknown field")
        for name in body
        if name not in REPLAY_FIELDS
    ]
    ids = body.get("ids")
    if ids is not None and (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= MAX_REPLAY_IDS
        or not all(isinstance(i, str) and 0 < len(i) <= 128 for i in ids)
    ):
        errors.append(FieldError(field="ids", message=f"must be 1..{MAX_REPLAY_IDS} id strings"))
    reason = body.get("reason")
    if reason is not None and reason not in _REASONS:
        errors.append(FieldError(field="reason", message=f"must be one of {', '.join(_REASONS)}"))
    times: dict[str, datetime | None] = {"since": None, "until": None}
    for name in times:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(FieldError(field=name, message="must be an RFC 3339 string"))
            continue
        try:
            times[name] = parse_rfc3339(value)
        except ValueError as error:
            errors.append(FieldError(field=name, message=str(error)))
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        errors.append(FieldError(field="dry_run", message="must be true or false"))
    rate = body.get("rate_per_s", float("inf"))
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        errors.append(FieldError(field="rate_per_s", message="must be a number > 0"))
    if errors:
        raise ProblemError(problems.validation_failed(errors))
    where = DlqFilter(
        tenant_id=tenant_id,
        reason=reason,
        since=times["since"],
        until=times["until"],
        ids=frozenset(ids) if ids is not None else None,
    )
    return where, bool(dry_run), float(rate)


async def replay_dlq(gateway: Gateway, request: Request) -> Response:
    """Replay the tenant's matching dead letters (or report what would be replayed)."""
    principal = gateway.authenticate(request)
    require_scope(principal, SCOPE_ADMIN)
    body = await request.read_json(gateway.config.limits.body_max_bytes)
    where, dry_run, rate = _parse_replay(body, principal.tenant_id)
    service = _service(gateway)
    try:
        report = await service.replay(
            where, dry_run=dry_run, rate_per_s=rate, actor=f"api:{principal.subject}"
        )
    except DlqUnavailable as error:
        raise _redis_unavailable(error) from None
    except TransientStoreError:
        raise ProblemError(problems.overloaded("Storage is unavailable; retry later.", 1)) from None
    return json_response(200, report.to_jsonable())


def _redis_unavailable(error: DlqUnavailable) -> ProblemError:
    log.warning("DLQ unavailable: %s", error, extra={"event": "dlq_unavailable"})
    return ProblemError(
        problems.unavailable(
            "The dead-letter queue (Redis) is unavailable; retry later.",
            problems.REDIS_RETRY_AFTER_S,
        )
    )
