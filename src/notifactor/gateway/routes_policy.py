"""``GET /v1/admin/policy``: the limits and retry policy that apply to the token's tenant.

Scope ``admin``, own tenant only. Policies come from configuration
(``[tenants.default]`` and ``[tenants."<id>"]``, SPEC §2), so this endpoint
reads them and does not change them: ``{"tenant_id": ..., "source":
"tenant" | "default", "policy": {rate_per_s, burst, daily_quota,
max_ws_connections, max_attempts, retry_base_ms, retry_cap_ms,
retention_days}}``.
"""

from __future__ import annotations

import attrs

from notifactor.auth.verify import SCOPE_ADMIN
from notifactor.gateway.context import Gateway, require_scope
from notifactor.gateway.http import Request, Response, json_response


async def get_policy(gateway: Gateway, request: Request) -> Response:
    """The effective policy of the caller's tenant."""
    principal = gateway.authenticate(request)
    require_scope(principal, SCOPE_ADMIN)
    tenant_id = principal.tenant_id
    policy = gateway.config.tenant_policy(tenant_id)
    source = "tenant" if tenant_id in gateway.config.tenants else "default"
    return json_response(
        200, {"tenant_id": tenant_id, "source": source, "policy": attrs.asdict(policy)}
    )
