from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from notifactor.auth.tokens import mint_token
from notifactor.auth.verify import InvalidTokenError, TokenVerifier, build_verifier
from notifactor.config import Config
from notifactor.errors import ConfigError

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


def test_a_jwks_with_other_key_types_never_crashes_verification(tmp_path: Path) -> None:
    """ES256 configured, an RSA key in the set: a token naming it is a 401, not a crash."""
    ec_private = ec.generate_private_key(ec.SECP256R1())
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_private.public_key()))
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_private.public_key()))
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [{**rsa_jwk, "kid": "r1"}, {**ec_jwk, "kid": "e1"}]}))
    verifier = build_verifier(Config(jwt_algorithm="ES256", jwt_jwks_file=jwks_file))
    forged = jwt.encode(claims(), ec_private, algorithm="ES256", headers={"kid": "r1"})
    with pytest.raises(InvalidTokenError, match="kid"):
        verifier.verify(forged)
    # Without a kid, the one usable (EC) key is the one.
    verifier.verify(jwt.encode(claims(), ec_private, algorithm="ES256"))
    verifier.verify(jwt.encode(claims(), ec_private, algorithm="ES256", headers={"kid": "e1"}))


def test_unusable_key_material_is_refused_when_the_verifier_is_built(tmp_path: Path) -> None:
    pem_file = tmp_path / "key.pem"
    pem_file.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="jwt_public_key_file: not a usable ES256 public key"):
        build_verifier(Config(jwt_algorithm="ES256", jwt_public_key_file=pem_file))
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text("{not json")
    with pytest.raises(ConfigError, match="jwt_jwks_file: not a usable key set"):
        build_verifier(Config(jwt_algorithm="ES256", jwt_jwks_file=jwks_file))
    rsa_only = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    jwks_file.write_text(
        json.dumps({"keys": [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_only))]})
    )
    with pytest.raises(ConfigError, match="no ES256 key"):
        build_verifier(Config(jwt_algorithm="ES256", jwt_jwks_file=jwks_file))


# --- attribution of refused tokens to their tenant ----------------------------


def minted(
    *,
    now_offset: int = 0,
    secret: str = SECRET,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    return mint_token(
        secret=secret,
        tenant_id="acme",
        subject="alice",
        scopes=("notifications:write",),
        ttl_s=60,
        now=int(time.time()) + now_offset,
        issuer=issuer,
        audience=audience,
    )


def refusal(verifier: TokenVerifier, token: str, match: str | None = None) -> InvalidTokenError:
    with pytest.raises(InvalidTokenError, match=match) as caught:
        verifier.verify(token)
    return caught.value


def test_an_expired_token_is_attributed_to_its_tenant_and_subject() -> None:
    verifier = build_verifier(Config(jwt_secret=SECRET), hs256_secret=SECRET)
    error = refusal(verifier, minted(now_offset=-3600), match="expired")
    assert error.tenant_id == "acme"
    assert error.subject == "alice"


def test_a_wrong_or_missing_audience_is_attributed() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, audience="notifactor")
    for token in (minted(audience="elsewhere"), minted()):
        error = refusal(verifier, token)
        assert (error.tenant_id, error.subject) == ("acme", "alice")
    assert verifier.verify(minted(audience="notifactor")).tenant_id == "acme"


def test_a_wrong_issuer_is_attributed() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, issuer="https://idp")
    error = refusal(verifier, minted(issuer="https://other"))
    assert (error.tenant_id, error.subject) == ("acme", "alice")


def test_a_missing_required_claim_is_attributed_when_the_tenant_is_there() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    error = refusal(verifier, jwt.encode({"sub": "alice", "tenant_id": "acme"}, SECRET), "exp")
    assert (error.tenant_id, error.subject) == ("acme", "alice")
    error = refusal(verifier, jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, SECRET))
    assert (error.tenant_id, error.subject) == (None, "")


def test_a_bad_signature_is_not_attributed() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    error = refusal(verifier, minted(secret="w" * 40), match="signature")
    assert (error.tenant_id, error.subject) == (None, "")
    # Expired *and* badly signed: the signature is checked first, so no attribution.
    error = refusal(verifier, minted(secret="w" * 40, now_offset=-3600))
    assert (error.tenant_id, error.subject) == (None, "")


def test_a_tampered_token_is_not_attributed() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, audience="notifactor")
    header, _, signature = minted(audience="notifactor").split(".")
    forged_claims = jwt.encode(claims(tenant_id="victim", aud="elsewhere"), "k" * 40).split(".")[1]
    error = refusal(verifier, f"{header}.{forged_claims}.{signature}")
    assert (error.tenant_id, error.subject) == (None, "")


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "", "Bearer x"])
def test_garbage_is_not_attributed(garbage: str) -> None:
    error = refusal(TokenVerifier(algorithm="HS256", key=SECRET), garbage)
    assert (error.tenant_id, error.subject) == (None, "")


def test_another_algorithm_is_not_attributed() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    es_verifier = TokenVerifier(algorithm="ES256", key=public_pem.decode())
    error = refusal(es_verifier, minted(now_offset=-3600))
    assert (error.tenant_id, error.subject) == (None, "")
    unsigned = jwt.encode(claims(tenant_id="acme", exp=0), "", algorithm="none")
    error = refusal(TokenVerifier(algorithm="HS256", key=SECRET), unsigned)
    assert (error.tenant_id, error.subject) == (None, "")


def test_an_invalid_subject_keeps_the_tenant_but_not_the_subject() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    error = refusal(verifier, jwt.encode(claims(tenant_id="acme", sub="not a user"), SECRET), "sub")
    assert (error.tenant_id, error.subject) == ("acme", "")
    expired = claims(tenant_id="acme", sub="not a user", exp=int(time.time()) - 3600)
    error = refusal(verifier, jwt.encode(expired, SECRET), "expired")
    assert (error.tenant_id, error.subject) == ("acme", "")


def test_an_invalid_scope_is_attributed() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    bad_scope = claims(tenant_id="acme", sub="alice", scope=["admin"])
    error = refusal(verifier, jwt.encode(bad_scope, SECRET), "scope")
    assert (error.tenant_id, error.subject) == ("acme", "alice")


def test_an_invalid_tenant_is_never_attributed() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    for bad in (claims(tenant_id="bad tenant"), claims(tenant_id=7, exp=int(time.time()) - 3600)):
        error = refusal(verifier, jwt.encode(bad, SECRET))
        assert (error.tenant_id, error.subject) == (None, "")


def test_a_non_string_subject_is_attributed_to_the_tenant() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    error = refusal(verifier, jwt.encode(claims(tenant_id="acme", sub=7), SECRET))
    assert (error.tenant_id, error.subject) == ("acme", "")


def test_a_refused_token_is_not_cached() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, audience="notifactor")
    token = minted(audience="elsewhere")
    for _ in range(2):
        assert refusal(verifier, token).tenant_id == "acme"
    assert len(verifier.cache) == 0


def test_header_errors_are_not_attributed() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(InvalidTokenError) as caught:
            verifier.verify_header(header)
        assert (caught.value.tenant_id, caught.value.subject) == (None, "")
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify_header(f"Bearer {minted(now_offset=-3600)}")
    assert (caught.value.tenant_id, caught.value.subject) == ("acme", "alice")


# --- claims out of range -------------------------------------------------------


def test_an_exp_too_large_for_a_float_is_an_invalid_token() -> None:
    """``--ttl 1`` followed by 400 zeros: refused as invalid, never a crash."""
    verifier = TokenVerifier(algorithm="HS256", key=SECRET)
    huge = 10**400
    for bad in (claims(exp=huge), claims(nbf=huge), claims(iat=huge)):
        with pytest.raises(InvalidTokenError):
            verifier.verify(jwt.encode(bad, SECRET))
    assert len(verifier.cache) == 0
