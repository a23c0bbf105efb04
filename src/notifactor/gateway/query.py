"""Query strings of the listing endpoints: known parameters, each once, and a page size."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from notifactor.domain.cursor import InvalidCursorError
from notifactor.domain.rfc3339 import parse_rfc3339
from notifactor.gateway import problems
from notifactor.gateway.problems import FieldError, ProblemError
from notifactor.ports.notification_store import MAX_PAGE_LIMIT, TransientStoreError

#: ASCII digits only (``str.isdigit`` also accepts ``²`` and other scripts' digits),
#: no more of them than the largest page size has.
_LIMIT = re.compile(rf"[0-9]{{1,{len(str(MAX_PAGE_LIMIT))}}}")


def query_values(
    pairs: list[tuple[str, str]], allowed: Collection[str], errors: list[FieldError]
) -> dict[str, str]:
    """The parameters of ``pairs`` by name; unknown or repeated ones are added to ``errors``."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            errors.append(FieldError(field=name, message="unknown query parameter"))
        elif name in values:
            errors.append(FieldError(field=name, message="given more than once"))
        else:
            values[name] = value
    return values


def page_limit(values: dict[str, str], default: int, errors: list[FieldError]) -> int:
    """``limit`` (1..MAX_PAGE_LIMIT) from ``values``, else ``default``; a bad one goes to ``errors``."""
    raw = values.get("limit")
    if raw is None:
        return default
    if _LIMIT.fullmatch(raw) is None or not 1 <= int(raw) <= MAX_PAGE_LIMIT:
        errors.append(FieldError(field="limit", message=f"must be an integer 1..{MAX_PAGE_LIMIT}"))
        return default
    return int(raw)


def window_and_cursor(values: dict[str, str], errors: list[FieldError]) -> dict[str, Any]:
    """``since``/``until`` (RFC 3339, in order) and a non-empty ``cursor``, where given."""
    parsed: dict[str, Any] = {}
    for name in ("since", "until"):
        if name in values:
            try:
                parsed[name] = parse_rfc3339(values[name])
            except ValueError as error:
                errors.append(FieldError(field=name, message=str(error)))
    if "cursor" in values:
        if not values["cursor"]:
            errors.append(FieldError(field="cursor", message="must not be empty"))
        parsed["cursor"] = values["cursor"]
    since, until = parsed.get("since"), parsed.get("until")
    if isinstance(since, datetime) and isinstance(until, datetime) and since > until:
        errors.append(FieldError(field="until", message="must not be before since"))
    return parsed


@contextmanager
def listing_errors() -> Iterator[None]:
    """A store listing's cursor and availability errors as problems (400, 503)."""
    try:
        yield
    except InvalidCursorError as error:
        raise ProblemError(
            problems.bad_request(
                "The cursor is not valid for this listing.",
                [FieldError(field="cursor", message=str(error))],
            )
        ) from None
    except TransientStoreError:
        raise ProblemError(problems.overloaded("Storage is unavailable; retry later.", 1)) from None
