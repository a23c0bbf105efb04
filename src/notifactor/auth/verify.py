"""Verifying bearer tokens (SPEC §3).

Only the configured algorithm is accepted: HS256 with the shared secret, or
RS256/ES256 with a PEM public key or a JWKS file (when ``jwt_algorithm`` is
left unset, the key file's type picks it: :func:`infer_algorithm`). A key file
that cannot be read or used is a :class:`ConfigError` naming its key. Required claims are ``sub``,
``tenant_id`` and ``exp``; ``iss``/``aud`` are checked when configured; clocks
may disagree by :data:`LEEWAY_S`. Failures raise :class:`InvalidTokenError`
with a short reason that never contains the token itself.

Verified tokens are remembered by their exact string for a short while
(:class:`VerifiedTokenCache`): a client sends the same bearer token on every
request, and checking the signature again proves nothing new. Only a token
that passed every check is remembered, never past its own ``exp``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from notifactor.config import Config
from notifactor.config.model import JwtAlgorithm
from notifactor.domain.identifiers import TENANT_ID, USER_ID
from notifactor.errors import ConfigError

LEEWAY_S = 30
REQUIRED_CLAIMS = ("sub", "tenant_id", "exp")
_PURGE_INTERVAL_S = 1.0

#: Longest time a verified token is answered from the cache (never past its ``exp``).
TOKEN_CACHE_TTL_S = 30.0
#: Most tokens remembered at once; the oldest entry goes first.
TOKEN_CACHE_SIZE = 4096

SCOPE_WRITE = "notifications:write"
SCOPE_READ = "notifications:read"
SCOPE_DELIVERIES = "deliveries:read"
SCOPE_ADMIN = "admin"


class InvalidTokenError(Exception):
    """The token is missing, malformed, expired, badly signed or lacks a claim.

    Attributes:
        tenant_id: the token's tenant when its signature was good and only a
            claim failed (expired, wrong audience, ...): the issuer did issue
            it to that tenant, so the refusal can go to the tenant's audit
            log. ``None`` for unsigned, badly signed or malformed tokens.
        subject: the token's ``sub`` in the same case ("" otherwise).
    """

    def __init__(self, reason: str, *, tenant_id: str | None = None, subject: str = "") -> None:
        super().__init__(reason)
        self.tenant_id = tenant_id
        self.subject = subject


#: PyJWT errors raised only after the signature checked out.
_SIGNED_CLAIM_ERRORS = (
    jwt.ExpiredSignatureError,
    jwt.ImmatureSignatureError,
    jwt.InvalidAudienceError,
    jwt.InvalidIssuerError,
    jwt.InvalidIssuedAtError,
    jwt.exceptions.InvalidSubjectError,
    jwt.exceptions.InvalidJTIError,
    jwt.MissingRequiredClaimError,
)


@attrs.frozen(kw_only=True)
class Principal:
    """Who a valid token speaks for."""

    tenant_id: str
    subject: str
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class VerifiedTokenCache:
    """Principals of recently verified tokens, keyed by the raw token string.

    Security-neutral by construction: an entry is only added after the
    signature, algorithm, issuer, audience and every required claim were
    checked, and it stops answering at ``min(verified_at + ttl_s, exp)`` — the
    cache never extends a token's life (it drops even the clock leeway).
    Bounded to ``size`` entries; when full, expired entries are purged (at
    most once a second) and then the oldest ones are evicted.
    """

    def __init__(
        self,
        *,
        size: int = TOKEN_CACHE_SIZE,
        ttl_s: float = TOKEN_CACHE_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if size < 0 or ttl_s < 0:
            raise ValueError("size and ttl_s must not be negative")
        self.size = size
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._last_purge = -math.inf

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        """The cached principal of ``token``, or None (unknown or no longer valid)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, valid_until = entry
        if self._clock() >= valid_until:
            del self._entries[token]
            return None
        return principal

    def put(self, token: str, principal: Principal, exp: float) -> None:
        """Remember a token that passed verification; ``exp`` is its expiry claim."""
        if self.size == 0:
            return
        now = self._clock()
        valid_until = min(now + self.ttl_s, exp)
        if valid_until <= now:
            return
        entries = self._entries
        entries.pop(token, None)
        if len(entries) >= self.size and now - self._last_purge >= _PURGE_INTERVAL_S:
            # A full scan at most once a second: inserts stay cheap when
            # thousands of new tokens arrive at once (a reconnect storm).
            self._last_purge = now
            for stale in [t for t, (_, until) in entries.items() if until <= now]:
                del entries[stale]
        while len(entries) >= self.size:
            del entries[next(iter(entries))]
        entries[token] = (principal, valid_until)


@attrs.define
class TokenVerifier:
    """Checks tokens against one algorithm and one key (or one JWKS).

    Attributes:
        algorithm: the only ``alg`` accepted.
        key: the HS256 secret or the PEM public key; ``None`` with a JWKS.
        jwks: the key set to pick from by ``kid``; ``None`` with a single key.
    """

    algorithm: str
    key: str | None = None
    jwks: jwt.PyJWKSet | None = None
    issuer: str | None = None
    audience: str | None = None
    cache: VerifiedTokenCache = attrs.field(factory=VerifiedTokenCache)

    def verify_header(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <jwt>`` header value."""
        if not authorization:
            raise InvalidTokenError("missing bearer token")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidTokenError("authorization scheme must be Bearer")
        return self.verify(token.strip())

    def verify(self, token: str) -> Principal:
        """The principal of a raw token (from the cache when it was verified recently)."""
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        try:
            claims = jwt.decode(
                token,
                key=self._key_for(token),
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=LEEWAY_S,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except _SIGNED_CLAIM_ERRORS as error:
            raise _signed_failure(token, _claim_reason(error)) from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("bad signature") from None
        except jwt.InvalidTokenError as error:
            raise InvalidTokenError(f"invalid token ({type(error).__name__})") from None
        except (jwt.PyJWTError, TypeError, ValueError) as error:
            # The token names a key this algorithm cannot use, or carries
            # something the library cannot read: unauthenticated, not a crash.
            raise InvalidTokenError(f"unusable token ({type(error).__name__})") from None
        try:
            principal = _principal(claims)
            expires_at = _expiry(claims["exp"])
        except InvalidTokenError as error:
            raise _attributed(str(error), claims) from None
        self.cache.put(token, principal, expires_at)
        return principal

    def _key_for(self, token: str) -> Any:
        if self.jwks is None:
            return self.key
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise InvalidTokenError("malformed token header") from error
        kid = header.get("kid")
        usable = [k for k in self.jwks.keys if k.key_type == _KEY_TYPES.get(self.algorithm)]
        keys = [k for k in usable if kid is None or k.key_id == kid]
        if kid is None and len(usable) != 1:
            raise InvalidTokenError("token has no kid and the key set has several keys")
        if not keys:
            raise InvalidTokenError("unknown kid")
        return keys[0].key


#: The JWK key type (``kty``) each asymmetric algorithm verifies with.
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}


def _claim_reason(error: jwt.InvalidTokenError) -> str:
    if isinstance(error, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"missing claim {error.claim}"
    return f"invalid token ({type(error).__name__})"


def _signed_failure(token: str, reason: str) -> InvalidTokenError:
    """The error for a token whose signature was verified but whose claims failed."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:  # pragma: no cover - it was just decoded once
        return InvalidTokenError(reason)
    return _attributed(reason, claims)


def _attributed(reason: str, claims: Mapping[str, Any]) -> InvalidTokenError:
    """``reason`` with the tenant and subject of verified ``claims``, where they are valid ids."""
    tenant_id, subject = claims.get("tenant_id"), claims.get("sub")
    if not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
        return InvalidTokenError(reason)
    if not isinstance(subject, str) or not USER_ID.fullmatch(subject):
        subject = ""
    return InvalidTokenError(reason, tenant_id=tenant_id, subject=subject)


def _expiry(exp: object) -> float:
    """The ``exp`` claim as a finite float; beyond that range the token is invalid."""
    try:
        value = float(exp)  # type: ignore[arg-type]  # PyJWT already read it as a number
    except (OverflowError, TypeError, ValueError):
        raise InvalidTokenError("exp claim out of range") from None
    if not math.isfinite(value):
        raise InvalidTokenError("exp claim out of range")
    return value


def _principal(claims: Mapping[str, Any]) -> Principal:
    tenant_id, subject, scope = claims.get("tenant_id"), claims.get("sub"), claims.get("scope", "")
    if not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
        raise InvalidTokenError("tenant_id claim is not a valid tenant id")
    if not isinstance(subject, str) or not USER_ID.fullmatch(subject):
        raise InvalidTokenError("sub claim is not a valid user id")
    if not isinstance(scope, str):
        raise InvalidTokenError("scope claim must be a space-separated string")
    return Principal(tenant_id=tenant_id, subject=subject, scopes=frozenset(scope.split()))


def build_verifier(config: Config, *, hs256_secret: str | None = None) -> TokenVerifier:
    """The verifier the configuration asks for.

    Args:
        config: ``jwt_algorithm``, key files, issuer and audience.
        hs256_secret: the HS256 secret, already resolved by the caller
            (:func:`notifactor.auth.secret.resolve_jwt_secret`); required for HS256.

    Raises:
        ConfigError: the key file is unreadable, malformed or holds no key of
            the configured algorithm (names ``jwt_public_key_file`` or ``jwt_jwks_file``).
        ValueError: HS256 without a secret, or RS256/ES256 without a key file.
    """
    common: dict[str, Any] = {"issuer": config.jwt_issuer, "audience": config.jwt_audience}
    algorithm = config.jwt_algorithm
    assert algorithm is not None  # resolved when the Config was built
    if algorithm == "HS256":
        if hs256_secret is None:
            raise ValueError("HS256 needs a secret")
        return TokenVerifier(algorithm="HS256", key=hs256_secret, **common)
    if config.jwt_public_key_file is not None:
        pem = read_key_file(PUBLIC_KEY_FILE, config.jwt_public_key_file)
        try:  # bad key material is a configuration error, not a 500 on every request
            jwt.get_algorithm_by_name(algorithm).prepare_key(pem)
        except (jwt.PyJWTError, TypeError, ValueError) as error:
            raise ConfigError(PUBLIC_KEY_FILE, _unusable_key(pem, algorithm, error)) from None
        return TokenVerifier(algorithm=algorithm, key=pem, **common)
    if config.jwt_jwks_file is not None:
        jwks = load_jwks(config.jwt_jwks_file)
        if not any(k.key_type == _KEY_TYPES[algorithm] for k in jwks.keys):
            raise ConfigError(JWKS_FILE, f"no {algorithm} key in the set")
        return TokenVerifier(algorithm=algorithm, jwks=jwks, **common)
    raise ValueError(f"{algorithm} needs jwt_public_key_file or jwt_jwks_file")


def _unusable_key(pem: str, algorithm: str, error: Exception) -> str:
    """Why ``pem`` cannot verify ``algorithm``: a key of the other algorithm is named as such."""
    try:
        actual: str | None = _pem_algorithm(pem)
    except ConfigError:
        actual = None
    if actual is not None and actual != algorithm:
        return (
            f"an {actual} key cannot verify {algorithm}: "
            f"set jwt_algorithm to {actual}, or leave it unset to follow the key"
        )
    return f"not a usable {algorithm} public key ({error})"


# --- key files -------------------------------------------------------------------

PUBLIC_KEY_FILE = "jwt_public_key_file"
JWKS_FILE = "jwt_jwks_file"


def read_key_file(key: str, path: Path) -> str:
    """The text of a key file; any failure is a :class:`ConfigError` naming ``key``."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(key, f"{path} is not text (PEM or JSON expected)") from None
    except OSError as error:
        raise ConfigError(key, f"cannot read {path}: {error.strerror or error}") from None


def load_jwks(path: Path) -> jwt.PyJWKSet:
    """The key set in a JWKS file: a JSON object whose ``keys`` is a list of JWKs."""
    text = read_key_file(JWKS_FILE, path)
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConfigError(JWKS_FILE, f"not a usable key set (not JSON: {error})") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise ConfigError(
            JWKS_FILE, 'not a usable key set (expected {"keys": [<JWK object>, ...]})'
        )
    try:
        return jwt.PyJWKSet(keys)
    except (jwt.PyJWTError, AttributeError, KeyError, TypeError, ValueError) as error:
        raise ConfigError(JWKS_FILE, f"not a usable key set ({error})") from None


def infer_algorithm(*, public_key_file: Path | None, jwks_file: Path | None) -> JwtAlgorithm:
    """The algorithm a key file implies: RS256 for RSA keys, ES256 for P-256 keys.

    Raises:
        ConfigError: the file is unreadable or malformed, or its keys do not
            name a single algorithm (then ``jwt_algorithm`` must be set).
    """
    if public_key_file is not None:
        return _pem_algorithm(read_key_file(PUBLIC_KEY_FILE, public_key_file))
    if jwks_file is not None:
        return _jwks_algorithm(load_jwks(jwks_file))
    raise ValueError("no key file to infer the algorithm from")


def _pem_algorithm(pem: str) -> JwtAlgorithm:
    try:
        public_key = serialization.load_pem_public_key(pem.encode())
    except (TypeError, ValueError) as error:
        raise ConfigError(PUBLIC_KEY_FILE, f"not a PEM public key ({error})") from None
    algorithm = _key_algorithm(public_key)
    if algorithm is None:
        raise ConfigError(
            PUBLIC_KEY_FILE,
            "neither an RSA nor a P-256 EC public key: set jwt_algorithm to RS256 or ES256",
        )
    return algorithm


def _jwks_algorithm(jwks: jwt.PyJWKSet) -> JwtAlgorithm:
    found = {_key_algorithm(k.key) for k in jwks.keys}
    if len(found) != 1 or None in found:
        raise ConfigError(
            JWKS_FILE,
            "the keys do not all share one algorithm (RSA or P-256 EC): "
            "set jwt_algorithm to RS256 or ES256",
        )
    (algorithm,) = found
    assert algorithm is not None
    return algorithm


def _key_algorithm(public_key: object) -> JwtAlgorithm | None:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return "ES256"
    return None
