"""``GET /v1/admin/tree``: the live supervision tree, for ``notifactor tree``.

Who may read it: the tree is process-wide (it names no tenant's data, but its
crash messages may quote any tenant's request), while a tenant's ``admin``
scope covers its own tenant only (SPEC §3). So it is guarded more tightly
than a tenant's admin endpoints:

* a client on a loopback address that sends no ``Authorization`` header, when
  ``observability.tree_loopback_without_token`` is true (the default) — an
  operator on the host, which is what ``notifactor tree`` is;
* a client whose bearer token carries the ``admin`` scope *and* belongs to one
  of ``observability.tree_operator_tenants`` (none by default).

A request with a token is judged by the token, from anywhere: a bad token is
a 401, one without ``admin`` or of another tenant a 403. Crash tracebacks are only included for
loopback clients; remote admins get the type and message. Behind a reverse
proxy on the same host every client looks local: turn the loopback exemption
off there (or do not route ``/v1/admin/tree``).
"""

from __future__ import annotations

from typing import Any

from notifactor.auth.verify import SCOPE_ADMIN
from notifactor.gateway import problems
from notifactor.gateway.context import Gateway, require_scope
from notifactor.gateway.http import Request, Response, is_loopback_peer, json_response
from notifactor.gateway.problems import ProblemError
from notifactor.supervisors.statistics import to_jsonable


def is_loopback_client(request: Request) -> bool:
    """Whether the peer address of the connection is a loopback address."""
    return is_loopback_peer(request.scope.get("client"))


async def get_tree(gateway: Gateway, request: Request) -> Response:
    """The tree as ``to_jsonable(root.statistics())``; 503 while there is none."""
    local = is_loopback_client(request)
    exempt = (
        local
        and gateway.config.observability.tree_loopback_without_token
        and "authorization" not in request.headers
    )
    if not exempt:
        principal = gateway.authenticate(request)
        require_scope(principal, SCOPE_ADMIN)
        if principal.tenant_id not in gateway.config.observability.tree_operator_tenants:
            raise ProblemError(
                problems.forbidden(
                    "The supervision tree is process-wide; only admin tokens of the "
                    "operator tenants (observability.tree_operator_tenants) may read it."
                )
            )
    snapshot = None if gateway.supervision_snapshot is None else gateway.supervision_snapshot()
    if snapshot is None:
        raise ProblemError(problems.overloaded("The supervision tree is not running.", 1))
    body = to_jsonable(snapshot)
    if not local:
        _drop_tracebacks(body)
    return json_response(200, body)


def _drop_tracebacks(node: dict[str, Any]) -> None:
    crash = node.get("last_crash")
    if isinstance(crash, dict):
        crash["traceback"] = None
    for child in node.get("children", ()):
        _drop_tracebacks(child)
