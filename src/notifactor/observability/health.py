"""The ``/health`` checks of every listener: run together, each bounded, one report.

The REST API's ``/health`` and the metrics listener of a dispatcher-only
process run the same checks the same way: Redis, storage and supervision,
concurrently, each given :data:`CHECK_TIMEOUT_S`. A check that raises is
``fail``, one that does not answer in time ``timeout``. Only the supervision
check's message is shown (it names tree nodes); a Redis or storage error
might carry an address or a user name, so it goes to the log (one line, no
traceback), not to the response.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import attrs
import trio

log = logging.getLogger("notifactor.health")

HealthCheck = Callable[[], Awaitable[None]]

CHECK_TIMEOUT_S = 2.0
#: Checks whose failure message is safe to show.
DETAILED_CHECKS = frozenset({"supervision"})
#: ``Retry-After`` of a failing ``/health``.
RETRY_AFTER_S = 5


@attrs.frozen
class HealthReport:
    """Each check's state (``ok``, ``fail``, ``timeout``), in the order asked, and details."""

    checks: dict[str, str]
    details: dict[str, str]

    @property
    def failing(self) -> list[str]:
        return [name for name, state in self.checks.items() if state != "ok"]

    def to_jsonable(self) -> dict[str, object]:
        """``{"status": "ok", "checks": ...}``, or ``"fail"`` with ``failing`` and ``details``."""
        failing = self.failing
        if not failing:
            return {"status": "ok", "checks": self.checks}
        body: dict[str, object] = {"status": "fail", "checks": self.checks, "failing": failing}
        if self.details:
            body["details"] = self.details
        return body


async def run_health_checks(checks: Mapping[str, HealthCheck]) -> HealthReport:
    """Run ``checks`` concurrently, each bounded by :data:`CHECK_TIMEOUT_S`."""
    results: dict[str, str] = {}
    details: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        for name, check in checks.items():
            nursery.start_soon(_run_check, name, check, results, details)
    return HealthReport(checks={name: results[name] for name in checks}, details=details)


async def _run_check(
    name: str, check: HealthCheck, results: dict[str, str], details: dict[str, str]
) -> None:
    with trio.move_on_after(CHECK_TIMEOUT_S) as scope:
        try:
            await check()
        except Exception as error:
            # One line: a probe every second during an outage must not flood
            # the log with tracebacks.
            log.warning(
                "health check %s failed: %s: %s",
                name,
                type(error).__name__,
                error,
                extra={"event": "health_check", "reason": name},
            )
            results[name] = "fail"
            if name in DETAILED_CHECKS:
                details[name] = str(error)
            return
    results[name] = "timeout" if scope.cancelled_caught else "ok"
