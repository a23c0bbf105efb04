"""The shapes of tenant, user and channel ids (SPEC §4)."""

from __future__ import annotations

import re

TENANT_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
USER_ID = TENANT_ID
CHANNEL = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def check_tenant_id(value: str) -> str | None:
    """None when ``value`` is a valid tenant id, else the reason."""
    return None if TENANT_ID.fullmatch(value) else f"must match {TENANT_ID.pattern}"


def check_user_id(value: str) -> str | None:
    """None when ``value`` is a valid user id, else the reason."""
    return None if USER_ID.fullmatch(value) else f"must match {USER_ID.pattern}"


def check_channel(value: str) -> str | None:
    """None when ``value`` is a valid channel name, else the reason."""
    return None if CHANNEL.fullmatch(value) else f"must match {CHANNEL.pattern}"


def identity_problem(tenant_id: str, user_id: str) -> tuple[str, str] | None:
    """The first of (``tenant``, ``sub``) that is malformed, with the reason; None if both are fine."""
    for which, check, value in (
        ("tenant", check_tenant_id, tenant_id),
        ("sub", check_user_id, user_id),
    ):
        problem = check(value)
        if problem:
            return which, problem
    return None
