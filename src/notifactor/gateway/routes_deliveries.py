"""``GET /v1/tenants/{tenantId}/deliveries``: a tenant's delivery history, newest first."""

from __future__ import annotations

from typing import Any

from notifactor.auth.verify import SCOPE_DELIVERIES
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.identifiers import check_user_id
from notifactor.domain.rfc3339 import format_rfc3339
from notifactor.gateway import problems
from notifactor.gateway.context import Gateway, require_scope, require_tenant
from notifactor.gateway.http import Request, Response, json_response
from notifactor.gateway.problems import FieldError, ProblemError
from notifactor.gateway.query import listing_errors, page_limit, query_values, window_and_cursor

QUERY_PARAMS = frozenset({"user_id", "state", "since", "until", "limit", "cursor"})
DEFAULT_LIMIT = 50


def _parse_query(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    errors: list[FieldError] = []
    values = query_values(pairs, QUERY_PARAMS, errors)
    parsed: dict[str, Any] = {"limit": page_limit(values, DEFAULT_LIMIT, errors)}
    if "user_id" in values:
        if (reason := check_user_id(values["user_id"])) is not None:
            errors.append(FieldError(field="user_id", message=reason))
        parsed["user_id"] = values["user_id"]
    if "state" in values:
        try:
            parsed["state"] = DeliveryState(values["state"])
        except ValueError:
            states = ", ".join(s.value for s in DeliveryState)
            errors.append(FieldError(field="state", message=f"must be one of {states}"))
    parsed.update(window_and_cursor(values, errors))
    if errors:
        raise ProblemError(problems.validation_failed(errors))
    return parsed


async def list_deliveries(gateway: Gateway, request: Request) -> Response:
    """One page of deliveries and the cursor of the next (``null`` at the end)."""
    principal = gateway.authenticate(request)
    require_tenant(principal, request.path_params["tenant_id"])
    require_scope(principal, SCOPE_DELIVERIES)
    query = _parse_query(request.query())
    with listing_errors():
        page = await gateway.store.list_deliveries(principal.tenant_id, **query)
    items = [
        {
            "notification_id": record.notification_id,
            "user_id": record.user_id,
            "channel": record.channel,
            "state": record.state.value,
            "attempts": record.attempts,
            "last_error": record.last_error,
            "updated_at": format_rfc3339(record.updated_at),
        }
        for record in page.items
    ]
    return json_response(200, {"items": items, "next_cursor": page.next_cursor})
