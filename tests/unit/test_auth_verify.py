from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from notifactor.auth.tokens import mint_token
from notifactor.auth.verify import InvalidTokenError, TokenVerifier, build_verifier
from notifactor.config import Config

SECRET = "v" * 40


def claims(**extra: object) -> dict[str, object]:
    return {"sub": "u", "tenant_id": "t", "exp": int(time.time()) + 60, **extra}


def test_hs256_token_from_the_cli_minter() -> None:
    verifier = build_verifier(Config(jwt_secret=SECRET), hs256_secret=SECRET)
    token = mint_token(
        secret=SECRET, tenant_id="t", subject="u", scopes=("admin",), ttl_s=60, now=int(time.time())
    )
    principal = verifier.verify_header(f"Bearer {token}")
    assert principal.tenant_id == "t"
    assert principal.subject == "u"
    assert principal.scopes == {"admin"}


def test_issuer_and_audience_when_configured() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, issuer="iss", audience="aud")
    verifier.verify(jwt.encode(claims(iss="iss", aud="aud"), SECRET))
    for bad in (claims(iss="other", aud="aud"), claims(iss="iss", aud="x"), claims()):
        with pytest.raises(InvalidTokenError):
            verifier.verify(jwt.encode(bad, SECRET))


def test_audience_not_checked_when_not_configured() -> None:
    TokenVerifier(algorithm="HS256", key=SECRET).verify(jwt.encode(claims(aud="anything"), SECRET))


def test_leeway_is_30_seconds() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    verifier.verify(jwt.encode(claims(exp=int(time.time()) - 20), SECRET))
    with pytest.raises(InvalidTokenError, match="expired"):
        verifier.verify(jwt.encode(claims(exp=int(time.time()) - 40), SECRET))


def test_claim_shapes() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    for bad in (claims(tenant_id="bad tenant"), claims(sub=7), claims(scope=["a"])):
        with pytest.raises(InvalidTokenError):
            verifier.verify(jwt.encode(bad, SECRET))


def test_es256_with_jwks_and_key_confusion(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}))
    pem_file = tmp_path / "key.pem"
    pem_file.write_bytes(public_pem)
    token = jwt.encode(claims(), private, algorithm="ES256", headers={"kid": "k1"})
    build_verifier(Config(jwt_algorithm="ES256", jwt_jwks_file=jwks_file)).verify(token)
    pem_verifier = build_verifier(Config(jwt_algorithm="ES256", jwt_public_key_file=pem_file))
    pem_verifier.verify(token)
    # A token of another algorithm never passes, whatever it was signed with.
    with pytest.raises(InvalidTokenError):
        pem_verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    with pytest.raises(InvalidTokenError, match="kid"):
        build_verifier(Config(jwt_algorithm="ES256", jwt_jwks_file=jwks_file)).verify(
            jwt.encode(claims(), private, algorithm="ES256", headers={"kid": "nope"})
        )
