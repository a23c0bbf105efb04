"""``GET /v1/admin/audit``: the token's tenant audit log, newest first (scope ``admin``).

Query: ``since``, ``until`` (RFC 3339), ``limit`` (1..500, default 50) and
``cursor`` (the previous page's ``next_cursor``). Answers
``{"items": [...], "next_cursor": "..." | null}``; each item has
``event_id``, ``event_type``, ``event_time`` and ``metadata``.
"""

from __future__ import annotations

from typing import Any

from notifactor.auth.verify import SCOPE_ADMIN
from notifactor.domain.rfc3339 import format_rfc3339
from notifactor.gateway import problems
from notifactor.gateway.context import Gateway, require_scope
from notifactor.gateway.http import Request, Response, json_response
from notifactor.gateway.problems import FieldError, ProblemError
from notifactor.gateway.query import listing_errors, page_limit, query_values, window_and_cursor

QUERY_PARAMS = frozenset({"since", "until", "limit", "cursor"})
DEFAULT_LIMIT = 50


def _parse_query(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    errors: list[FieldError] = []
    values = query_values(pairs, QUERY_PARAMS, errors)
    parsed: dict[str, Any] = {"limit": page_limit(values, DEFAULT_LIMIT, errors)}
    parsed.update(window_and_cursor(values, errors))
    if errors:
        raise ProblemError(problems.validation_failed(errors))
    return parsed


async def list_audit(gateway: Gateway, request: Request) -> Response:
    """One page of the tenant's audit events and the cursor of the next."""
    principal = gateway.authenticate(request)
    require_scope(principal, SCOPE_ADMIN)
    query = _parse_query(request.query())
    with listing_errors():
        page = await gateway.store.list_audit(principal.tenant_id, **query)
    items = [
        {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "event_time": format_rfc3339(event.event_time),
            "metadata": event.metadata,
        }
        for event in page.items
    ]
    return json_response(200, {"items": items, "next_cursor": page.next_cursor})
