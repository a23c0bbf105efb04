"""What every handler needs: configuration, ports and the token verifier."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from notifactor.actors.audit_trail import AuditTrail
from notifactor.auth.verify import InvalidTokenError, Principal, TokenVerifier
from notifactor.config import Config, TenantPolicy
from notifactor.domain.audit_summary import ACCEPTED, REJECTED, AuditNote
from notifactor.domain.rate_limit import RateRule
from notifactor.gateway import problems
from notifactor.gateway.http import Request
from notifactor.gateway.problems import ProblemError
from notifactor.observability.health import HealthCheck
from notifactor.observability.log_context import bind_log_fields
from notifactor.ports.ingest import IngestBus
from notifactor.ports.notification_store import NotificationStore
from notifactor.supervisors.statistics import NodeStatistics

if TYPE_CHECKING:
    from notifactor.dispatcher.replay import ReplayService

log = logging.getLogger("notifactor.gateway")

TreeSnapshot = Callable[[], NodeStatistics | None]


async def _always_ok() -> None:
    return None


@functools.cache
def _rule_of(policy: TenantPolicy) -> RateRule:
    """A policy's rate rule, built once (policies are immutable; one per configured tenant)."""
    return RateRule.from_policy(
        rate_per_s=policy.rate_per_s, burst=policy.burst, daily_quota=policy.daily_quota
    )


@attrs.frozen(kw_only=True)
class Gateway:
    """The gateway's dependencies, shared by all requests.

    Attributes:
        config: the process configuration (limits, tenant policies, partitions).
        verifier: checks bearer tokens.
        ingest: admission and enqueue (Redis in production).
        store: durable notifications and delivery statuses.
        audit: the tenant audit trail (accepted requests, auth and policy refusals).
        supervision_check: raises when the supervision tree is unhealthy;
            ``/health`` reports it as ``supervision``.
        dlq: dead-letter listing and replay for ``/v1/admin/dlq`` (None: 503).
        supervision_snapshot: the live tree for ``GET /v1/admin/tree``
            (None, or returning None: the process has no tree to show).
    """

    config: Config
    verifier: TokenVerifier
    ingest: IngestBus
    store: NotificationStore
    audit: AuditTrail
    supervision_check: HealthCheck = _always_ok
    supervision_snapshot: TreeSnapshot | None = None
    dlq: ReplayService | None = None

    @property
    def partitions(self) -> int:
        return self.config.supervision.partitions

    def rate_rule(self, tenant_id: str) -> RateRule:
        return _rule_of(self.config.tenant_policy(tenant_id))

    def authenticate(self, request: Request) -> Principal:
        """The caller's principal, or a 401 problem (the reason is logged, never the token)."""
        try:
            principal = self.verifier.verify_header(request.headers.get("authorization"))
        except InvalidTokenError as error:
            log.info("rejected bearer token", extra={"reason": str(error), "event": "auth"})
            if error.tenant_id is not None:
                request.caller = (error.tenant_id, error.subject)
            raise ProblemError(problems.unauthorized(str(error))) from None
        bind_log_fields(tenant_id=principal.tenant_id)
        request.caller = (principal.tenant_id, principal.subject)
        return principal

    def note_accepted(
        self,
        principal: Principal,
        route: str,
        ids: Sequence[str],
        duplicates: Sequence[str] = (),
    ) -> None:
        """Put accepted notifications on the tenant's audit trail (never waits)."""
        self.audit.note(
            AuditNote(
                tenant_id=principal.tenant_id,
                event_type=ACCEPTED,
                subject=principal.subject,
                route=route,
                status=202,
                at=datetime.now(UTC),
                ids=tuple(ids),
                duplicates=tuple(duplicates),
                count=len(ids) + len(duplicates),
            )
        )

    def note_rejected(
        self, caller: tuple[str, str], route: str, status: int, reason: str, count: int = 1
    ) -> None:
        """Put a refusal (auth or policy) on the caller's tenant audit trail (never waits)."""
        tenant_id, subject = caller
        self.audit.note(
            AuditNote(
                tenant_id=tenant_id,
                event_type=REJECTED,
                subject=subject,
                route=route,
                status=status,
                reason=reason,
                at=datetime.now(UTC),
                count=count,
            )
        )


def require_scope(principal: Principal, scope: str) -> None:
    """403 unless the token carries ``scope``."""
    if not principal.has_scope(scope):
        raise ProblemError(problems.forbidden(f"The token lacks the scope {scope}."))


def require_tenant(principal: Principal, tenant_id: str) -> None:
    """403 unless ``tenant_id`` is the token's tenant."""
    if tenant_id != principal.tenant_id:
        raise ProblemError(problems.forbidden("The tenant is not the token's tenant."))
