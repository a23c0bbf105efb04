"""The ASGI application: routing, the problem-document catch-all, websocket refusal.

Every response is either the handler's or a problem document; an exception a
handler did not expect is logged with its traceback and answered with a 500
problem, never a traceback or an HTML page. WebSocket scopes are refused here
(they have their own listener, SPEC §5).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

import attrs

from notifactor.gateway import (
    problems,
    routes_admin,
    routes_audit,
    routes_deliveries,
    routes_health,
    routes_notifications,
    routes_policy,
    routes_tree,
)
from notifactor.gateway.access import CLIENT_CLOSED, record_request
from notifactor.gateway.context import Gateway
from notifactor.gateway.http import (
    ClientGone,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    answer_lifespan,
    problem_response,
)
from notifactor.gateway.problems import Problem, ProblemError
from notifactor.observability.log_context import log_context

log = logging.getLogger("notifactor.gateway")

Handler = Callable[[Gateway, Request], Awaitable[Response]]


@attrs.frozen
class Route:
    """A path pattern (named groups become path parameters) and its handlers by method."""

    name: str
    pattern: re.Pattern[str]
    methods: dict[str, Handler]


ROUTES: tuple[Route, ...] = (
    Route(
        "notifications",
        re.compile(r"/v1/notifications"),
        {"POST": routes_notifications.post_notification},
    ),
    Route(
        "batch", re.compile(r"/v1/notifications:batch"), {"POST": routes_notifications.post_batch}
    ),
    Route(
        "notification",
        re.compile(r"/v1/notifications/(?P<id>[^/]+)"),
        {"GET": routes_notifications.get_notification},
    ),
    Route(
        "deliveries",
        re.compile(r"/v1/tenants/(?P<tenant_id>[^/]+)/deliveries"),
        {"GET": routes_deliveries.list_deliveries},
    ),
    Route("tree", re.compile(r"/v1/admin/tree"), {"GET": routes_tree.get_tree}),
    Route("admin-audit", re.compile(r"/v1/admin/audit"), {"GET": routes_audit.list_audit}),
    Route("admin-policy", re.compile(r"/v1/admin/policy"), {"GET": routes_policy.get_policy}),
    Route("admin-dlq", re.compile(r"/v1/admin/dlq"), {"GET": routes_admin.list_dlq}),
    Route(
        "admin-dlq-replay", re.compile(r"/v1/admin/dlq/replay"), {"POST": routes_admin.replay_dlq}
    ),
    Route("live", re.compile(r"/health/live"), {"GET": routes_health.live}),
    Route("health", re.compile(r"/health"), {"GET": routes_health.health}),
    Route("metrics", re.compile(r"/metrics"), {"GET": routes_health.metrics}),
    Route("openapi", re.compile(r"/openapi\.json"), {"GET": routes_health.openapi}),
)


def resolve(method: str, path: str) -> tuple[str, Handler | None, dict[str, str], tuple[str, ...]]:
    """The route name, handler, path parameters and allowed methods for a request."""
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is not None:
            handler = route.methods.get(method)
            return route.name, handler, match.groupdict(), tuple(route.methods)
    return "unknown", None, {}, ()


#: Refusals that go to the tenant's audit trail: auth, and policy (limits, shedding).
AUDITED_PROBLEMS = frozenset({"invalid-token", "forbidden", "rate-limited"})
#: Routes whose ``overloaded`` answers are load shedding (elsewhere: storage is down).
INGEST_ROUTES = frozenset({"notifications", "batch"})


def _audited(problem: Problem, route: str) -> bool:
    return problem.kind in AUDITED_PROBLEMS or (
        problem.kind == "overloaded" and route in INGEST_ROUTES
    )


class GatewayApp:
    """The ASGI callable for one :class:`Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            # Closing before accepting makes the server refuse the upgrade (HTTP 403).
            await send({"type": "websocket.close", "code": 1008})
        elif kind == "lifespan":
            await answer_lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request inside its own log context, counted and access-logged."""
        started = time.perf_counter()
        method, path = str(scope["method"]), str(scope["path"])
        name, handler, params, allowed = resolve(method, path)
        with log_context():
            status = CLIENT_CLOSED
            try:
                request = Request(scope=scope, receive=receive, path_params=params)
                status = await self._respond(
                    request, send, name=name, handler=handler, allowed=allowed
                )
            finally:
                record_request(name, method, status, started)

    async def _respond(
        self,
        request: Request,
        send: Send,
        *,
        name: str,
        handler: Handler | None,
        allowed: tuple[str, ...],
    ) -> int:
        """Run the handler and send its response (or a problem); the status sent."""
        try:
            if handler is None:
                if allowed:
                    raise ProblemError(problems.method_not_allowed(allowed))
                raise ProblemError(problems.not_found())
            response = await handler(self.gateway, request)
        except ProblemError as error:
            if request.caller is not None and _audited(error.problem, name):
                self.gateway.note_rejected(
                    request.caller, name, error.problem.status, error.problem.detail
                )
            response = problem_response(error.problem)
        except ClientGone:
            return CLIENT_CLOSED
        except Exception:
            log.exception("unhandled error", extra={"event": "http_500", "reason": name})
            response = problem_response(problems.internal_error())
        if not await request.discard_body(self.gateway.config.limits.batch_body_max_bytes):
            response = response.closing()
        await response.send(send)
        return response.status
