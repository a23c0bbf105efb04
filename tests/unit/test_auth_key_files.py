"""JWT key files: the algorithm they imply, and every way they can be unusable."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from notifactor.auth.verify import build_verifier
from notifactor.config import load_config
from notifactor.errors import ConfigError


def _claims() -> dict[str, object]:
    return {"sub": "u", "tenant_id": "acme", "exp": int(time.time()) + 60}


def _pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _jwk(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, object]:
    if isinstance(private, rsa.RSAPrivateKey):
        return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key())), "kid": kid}
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key())), "kid": kid}


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(("private", "algorithm"), [(RSA_KEY, "RS256"), (EC_KEY, "ES256")])
def test_a_public_key_file_alone_switches_to_its_algorithm(
    tmp_path: Path, private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, algorithm: str
) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(_pem(private))
    config = load_config(None, env={"NOTIFACTOR_JWT_PUBLIC_KEY_FILE": str(pem)})
    assert config.jwt_algorithm == algorithm
    verifier = build_verifier(config)
    assert verifier.algorithm == algorithm
    assert verifier.verify(jwt.encode(_claims(), private, algorithm=algorithm)).tenant_id == "acme"


@pytest.mark.parametrize(("private", "algorithm"), [(RSA_KEY, "RS256"), (EC_KEY, "ES256")])
def test_a_jwks_file_alone_switches_to_the_algorithm_of_its_keys(
    tmp_path: Path, private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, algorithm: str
) -> None:
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(private, "k1"), _jwk(other, "k2")]}))
    config = load_config(None, env={"NOTIFACTOR_JWT_JWKS_FILE": str(jwks)})
    assert config.jwt_algorithm == algorithm
    token = jwt.encode(_claims(), private, algorithm=algorithm, headers={"kid": "k1"})
    assert build_verifier(config).verify(token).subject == "u"


def test_a_jwks_mixing_key_types_asks_for_jwt_algorithm(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(RSA_KEY, "r"), _jwk(EC_KEY, "e")]}))
    with pytest.raises(ConfigError, match=r"^jwt_jwks_file: .*set jwt_algorithm"):
        load_config(None, env={"NOTIFACTOR_JWT_JWKS_FILE": str(jwks)})
    # Naming the algorithm settles it.
    config = load_config(
        None, env={"NOTIFACTOR_JWT_JWKS_FILE": str(jwks), "NOTIFACTOR_JWT_ALGORITHM": "ES256"}
    )
    token = jwt.encode(_claims(), EC_KEY, algorithm="ES256", headers={"kid": "e"})
    assert build_verifier(config).verify(token).subject == "u"


def test_a_key_of_another_curve_asks_for_jwt_algorithm(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(_pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(ConfigError, match=r"^jwt_public_key_file: .*set jwt_algorithm"):
        load_config(None, env={"NOTIFACTOR_JWT_PUBLIC_KEY_FILE": str(pem)})


def test_an_explicit_algorithm_must_match_the_key(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(_pem(RSA_KEY))
    config = load_config(
        None, env={"NOTIFACTOR_JWT_PUBLIC_KEY_FILE": str(pem), "NOTIFACTOR_JWT_ALGORITHM": "ES256"}
    )
    assert config.jwt_algorithm == "ES256"
    with pytest.raises(ConfigError) as refused:
        build_verifier(config)
    assert str(refused.value) == (
        "jwt_public_key_file: an RS256 key cannot verify ES256: "
        "set jwt_algorithm to RS256, or leave it unset to follow the key"
    )


@pytest.mark.parametrize("key_file", ["NOTIFACTOR_JWT_PUBLIC_KEY_FILE", "NOTIFACTOR_JWT_JWKS_FILE"])
def test_hs256_set_explicitly_next_to_a_key_file_is_refused(tmp_path: Path, key_file: str) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(_pem(RSA_KEY))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(RSA_KEY, "r")]}))
    path = pem if key_file.endswith("PUBLIC_KEY_FILE") else jwks
    with pytest.raises(ConfigError, match=r"^jwt_algorithm: HS256 verifies with jwt_secret"):
        load_config(None, env={key_file: str(path), "NOTIFACTOR_JWT_ALGORITHM": "HS256"})
    # Unset, it follows the key; with no key file at all, it is HS256.
    assert load_config(None, env={key_file: str(path)}).jwt_algorithm == "RS256"
    assert load_config(None, env={}).jwt_algorithm == "HS256"


BAD_FILES: list[tuple[str, str, bytes]] = [
    ("jwt_public_key_file", "key.der", b"\x30\x82\x01\x22\xff"),
    ("jwt_public_key_file", "key.pem", b"garbage\n"),
    ("jwt_jwks_file", "list.jwks", b"[1, 2]"),
    ("jwt_jwks_file", "int.jwks", b'{"keys": 5}'),
    ("jwt_jwks_file", "items.jwks", b'{"keys": [5]}'),
    ("jwt_jwks_file", "bad.jwks", b"{not json"),
    ("jwt_jwks_file", "binary.jwks", b"\xff\xfe\x00"),
]


@pytest.mark.parametrize("algorithm", [None, "RS256"])
@pytest.mark.parametrize(("key", "name", "content"), BAD_FILES)
def test_a_malformed_key_file_is_a_configuration_error_naming_it(
    tmp_path: Path, key: str, name: str, content: bytes, algorithm: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    env = {f"NOTIFACTOR_{key.upper()}": str(path)}
    if algorithm is not None:
        env["NOTIFACTOR_JWT_ALGORITHM"] = algorithm
    with pytest.raises(ConfigError) as caught:
        build_verifier(load_config(None, env=env))
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_an_unreadable_key_file_is_a_configuration_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(_pem(RSA_KEY))
    config = load_config(
        None, env={"NOTIFACTOR_JWT_PUBLIC_KEY_FILE": str(pem), "NOTIFACTOR_JWT_ALGORITHM": "RS256"}
    )
    real_read_text = Path.read_text

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        if self == pem:
            raise PermissionError(13, "Permission denied")
        return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(ConfigError, match=r"^jwt_public_key_file: cannot read .*Permission denied"):
        build_verifier(config)
    with pytest.raises(ConfigError, match=r"^jwt_public_key_file: cannot read"):
        load_config(None, env={"NOTIFACTOR_JWT_PUBLIC_KEY_FILE": str(pem)})
