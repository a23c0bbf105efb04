"""RFC 9457 problem documents: the only shape an error response ever has.

Handlers raise :class:`ProblemError`; the app turns it into an
``application/problem+json`` response. ``type`` is a URN per kind of problem
(stable, documented in the OpenAPI document); ``title`` is the same for every
occurrence of a kind; ``detail`` explains this occurrence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import trio

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:notifactor:problem:"

#: Longest a request waits for Redis before it is answered 503 ``unavailable``:
#: a stalled server must not hold requests open. The same bound as the
#: WebSocket connection-count check and each ``/health`` check.
REDIS_DEADLINE_S = 2.0
#: ``Retry-After`` of a 503 because Redis is unreachable or too slow.
REDIS_RETRY_AFTER_S = 1


@attrs.frozen(kw_only=True)
class FieldError:
    """One failing field: its name (dotted, with ``[i]`` for list items) and why."""

    field: str
    message: str


@attrs.frozen(kw_only=True)
class Problem:
    """A problem document plus the response headers that go with it."""

    status: int
    kind: str
    title: str
    detail: str
    errors: tuple[FieldError, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.kind

    def to_dict(self) -> dict[str, Any]:
        """The JSON body: ``type, title, status, detail`` and ``errors`` when any."""
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return body


class ProblemError(Exception):
    """Raised by handlers to answer with a problem document."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def unauthorized(detail: str) -> Problem:
    """401: no usable token. Carries the ``WWW-Authenticate`` challenge of SPEC §3."""
    return Problem(
        status=401,
        kind="invalid-token",
        title="Invalid or missing bearer token",
        detail=detail,
        headers=(("www-authenticate", 'Bearer error="invalid_token"'),),
    )


def forbidden(detail: str) -> Problem:
    return Problem(status=403, kind="forbidden", title="Forbidden", detail=detail)


def not_found(detail: str = "No such resource.") -> Problem:
    return Problem(status=404, kind="not-found", title="Not found", detail=detail)


def method_not_allowed(allowed: Sequence[str]) -> Problem:
    return Problem(
        status=405,
        kind="method-not-allowed",
        title="Method not allowed",
        detail=f"Allowed methods: {', '.join(allowed)}.",
        headers=(("allow", ", ".join(allowed)),),
    )


def bad_request(detail: str, errors: Sequence[FieldError] = ()) -> Problem:
    return Problem(
        status=400, kind="bad-request", title="Bad request", detail=detail, errors=tuple(errors)
    )


def not_json(detail: str) -> Problem:
    return Problem(status=400, kind="malformed-json", title="Body is not valid JSON", detail=detail)


def too_large(limit: int) -> Problem:
    return Problem(
        status=413,
        kind="body-too-large",
        title="Request body too large",
        detail=f"The body exceeds {limit} bytes.",
    )


def unsupported_media_type(got: str | None) -> Problem:
    return Problem(
        status=415,
        kind="unsupported-media-type",
        title="Unsupported media type",
        detail=f"Content-Type must be application/json, got {got or 'none'}.",
    )


def validation_failed(errors: Sequence[FieldError]) -> Problem:
    return Problem(
        status=422,
        kind="validation-failed",
        title="Validation failed",
        detail=f"{len(errors)} field(s) failed validation.",
        errors=tuple(errors),
    )


def rate_limited(detail: str, headers: Sequence[tuple[str, str]]) -> Problem:
    return Problem(
        status=429,
        kind="rate-limited",
        title="Too many requests",
        detail=detail,
        headers=tuple(headers),
    )


def _retry_later(kind: str, detail: str, retry_after_s: int) -> Problem:
    return Problem(
        status=503,
        kind=kind,
        title="Service unavailable",
        detail=detail,
        headers=(("retry-after", str(retry_after_s)),),
    )


def overloaded(detail: str, retry_after_s: int) -> Problem:
    """503: the pipeline is saturated (load shedding); retry after ``Retry-After``."""
    return _retry_later("overloaded", detail, retry_after_s)


def unavailable(detail: str, retry_after_s: int) -> Problem:
    """503: a dependency (Redis, storage) cannot be reached; retry after ``Retry-After``."""
    return _retry_later("unavailable", detail, retry_after_s)


@contextmanager
def redis_deadline(detail: str) -> Iterator[None]:
    """Bound the Redis calls of the block by :data:`REDIS_DEADLINE_S`.

    Past it, the calls are cancelled and the request is answered 503
    ``unavailable`` with ``detail`` and ``Retry-After``. (Ingest calls are
    bounded by the ingest bus itself, without a scope per request.)
    """
    with trio.move_on_after(REDIS_DEADLINE_S) as scope:
        yield
    if scope.cancelled_caught:
        raise ProblemError(unavailable(detail, REDIS_RETRY_AFTER_S))


def internal_error() -> Problem:
    return Problem(
        status=500,
        kind="internal-error",
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged.",
    )
