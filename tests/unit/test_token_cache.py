"""The verified-token cache: fast repeats, never longer than the token, bounded, never poisoned."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from notifactor.auth.verify import (
    InvalidTokenError,
    Principal,
    TokenVerifier,
    VerifiedTokenCache,
)

SECRET = "c" * 40


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token(**extra: object) -> str:
    claims: dict[str, Any] = {"sub": "u", "tenant_id": "t", "exp": int(time.time()) + 600}
    return jwt.encode({**claims, **extra}, SECRET)


def principal(sub: str = "u") -> Principal:
    return Principal(tenant_id="t", subject=sub, scopes=frozenset())


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token that reached the real signature check."""
    seen: list[str] = []
    real = jwt.decode

    def counting(jwt_token: str, *args: Any, **kwargs: Any) -> Any:
        # Reading the claims of a token already verified (to attribute a
        # refusal to its tenant) is not a signature check.
        if kwargs.get("options", {}).get("verify_signature", True):
            seen.append(jwt_token)
        return real(jwt_token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_a_repeated_token_is_verified_once(decodes: list[str]) -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    good = token(scope="notifications:write")
    first = verifier.verify(good)
    assert verifier.verify(good) == first
    assert verifier.verify_header(f"Bearer {good}") == first
    assert decodes == [good]


def test_the_cache_answers_no_longer_than_ttl_nor_past_exp() -> None:
    clock = FakeClock(1_000.0)
    cache = VerifiedTokenCache(ttl_s=30, clock=clock)
    cache.put("long-lived", principal(), exp=5_000.0)
    cache.put("expiring", principal(), exp=1_010.0)
    clock.now = 1_009.9
    assert cache.get("long-lived") is not None
    assert cache.get("expiring") is not None
    clock.now = 1_010.0  # the token's own exp: gone, although the TTL has not run out
    assert cache.get("expiring") is None
    clock.now = 1_030.0  # the TTL: gone, although the token is still valid
    assert cache.get("long-lived") is None
    assert len(cache) == 0


def test_an_already_expired_token_is_not_remembered() -> None:
    cache = VerifiedTokenCache(clock=FakeClock(1_000.0))
    cache.put("inside-leeway", principal(), exp=990.0)
    assert cache.get("inside-leeway") is None
    assert len(cache) == 0


def test_after_expiry_the_signature_is_checked_again(decodes: list[str]) -> None:
    clock = FakeClock(time.time())
    verifier = TokenVerifier(
        algorithm="HS256", key=SECRET, cache=VerifiedTokenCache(ttl_s=5, clock=clock)
    )
    good = token()
    verifier.verify(good)
    verifier.verify(good)
    clock.now += 5
    verifier.verify(good)
    assert decodes == [good, good]


def test_the_cache_is_bounded_and_evicts_the_oldest() -> None:
    cache = VerifiedTokenCache(size=3, clock=FakeClock(0.0))
    for i in range(10):
        cache.put(f"tok-{i}", principal(f"u{i}"), exp=100.0)
        assert len(cache) <= 3
    assert [cache.get(f"tok-{i}") is not None for i in range(10)] == [False] * 7 + [True] * 3


def test_expired_entries_are_purged_before_live_ones_are_evicted() -> None:
    clock = FakeClock(0.0)
    cache = VerifiedTokenCache(size=2, ttl_s=100, clock=clock)
    cache.put("live", principal(), exp=1_000.0)
    cache.put("short", principal(), exp=10.0)
    clock.now = 20.0
    cache.put("new", principal(), exp=1_000.0)
    assert cache.get("live") is not None
    assert cache.get("new") is not None


def test_size_zero_disables_the_cache(decodes: list[str]) -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, cache=VerifiedTokenCache(size=0))
    good = token()
    verifier.verify(good)
    verifier.verify(good)
    assert decodes == [good, good]


@pytest.mark.parametrize(
    "bad",
    [
        jwt.encode({"sub": "u", "tenant_id": "t", "exp": int(time.time()) + 600}, "w" * 40),
        token(exp=int(time.time()) - 3_600),
        token(tenant_id="not a tenant"),
        jwt.encode({"sub": "u", "tenant_id": "t"}, SECRET),
        "not.a.jwt",
    ],
    ids=["bad-signature", "expired", "bad-claim", "no-exp", "garbage"],
)
def test_a_bad_token_is_never_cached(bad: str, decodes: list[str]) -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    for _ in range(3):
        with pytest.raises(InvalidTokenError):
            verifier.verify(bad)
    assert len(verifier.cache) == 0
    assert decodes == [bad] * 3


def test_a_tampered_copy_of_a_cached_token_is_rejected() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    good = token(scope="notifications:read")
    verifier.verify(good)
    header, _payload, signature = good.split(".")
    forged_payload = jwt.utils.base64url_encode(
        b'{"sub":"u","tenant_id":"t","exp":9999999999,"scope":"admin"}'
    ).decode()
    with pytest.raises(InvalidTokenError):
        verifier.verify(f"{header}.{forged_payload}.{signature}")


def test_a_full_cache_scans_for_expired_entries_at_most_once_a_second() -> None:
    clock = FakeClock(0.0)
    cache = VerifiedTokenCache(size=3, ttl_s=100, clock=clock)
    for name in ("a", "b", "c"):
        cache.put(name, principal(), exp=1_000.0)
    scans = 0
    original = cache._entries

    class CountingDict(dict[str, Any]):
        def items(self) -> Any:
            nonlocal scans
            scans += 1
            return super().items()

    cache._entries = CountingDict(original)
    for i in range(50):
        cache.put(f"new-{i}", principal(), exp=1_000.0)
    assert scans == 1
    assert len(cache) == 3
    clock.now = 1.5
    cache.put("later", principal(), exp=1_000.0)
    assert scans == 2
