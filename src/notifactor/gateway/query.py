"""Query strings of the listing endpoints: known parameters, each once, and a page size."""

from __future__ import annotations

from collections.abc import Collection

from notifactor.gateway.problems import FieldError
from notifactor.ports.notification_store import MAX_PAGE_LIMIT


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
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_LIMIT:
        errors.append(FieldError(field="limit", message=f"must be an integer 1..{MAX_PAGE_LIMIT}"))
        return default
    return int(raw)
