"""Minting HS256 tokens for development and tests (``notifactor token``)."""

from __future__ import annotations

from typing import Any

import jwt

DEFAULT_SCOPES = ("notifications:write", "notifications:read", "deliveries:read")


def mint_token(
    *,
    secret: str,
    tenant_id: str,
    subject: str,
    scopes: tuple[str, ...],
    ttl_s: int,
    now: int,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A signed token with the claims SPEC §3 requires (``sub``, ``tenant_id``, ``exp``)."""
    claims: dict[str, Any] = {
        "sub": subject,
        "tenant_id": tenant_id,
        "iat": now,
        "exp": now + ttl_s,
        "scope": " ".join(scopes),
    }
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
