"""The console script as an operator runs it: real processes, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

SECRET = "s" * 40


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "notifactor", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"NOTIFACTOR_HTTP_PORT": "eighty"}, "http_port"),
        (
            {"NOTIFACTOR_SUPERVISION__DISPATCHER__STRATEGY": "everything"},
            "supervision.dispatcher.strategy",
        ),
        ({"NOTIFACTOR_CONFIG": "/nonexistent/notifactor.toml"}, "config"),
        ({"NOTIFACTOR_JWT_SECRET": " "}, "jwt_secret"),
    ],
)
@pytest.mark.parametrize(
    "command", [["serve"], ["migrate"], ["token", "--tenant", "t", "--sub", "u"]]
)
def test_bad_configuration_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], key: str, command: list[str]
) -> None:
    result = run_cli(*command, env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"notifactor: configuration error: {key}:")
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_toml_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[tenants.default]\nburst = 0\n", encoding="utf-8")
    result = run_cli("token", "--config", str(config), "--tenant", "t", "--sub", "u")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "notifactor: configuration error: tenants.default.burst: must be > 0, got 0"
    )


def test_token_mints_a_verifiable_jwt(tmp_path: Path) -> None:
    result = run_cli(
        "token",
        "--tenant",
        "acme",
        "--sub",
        "user-1",
        "--scope",
        "admin notifications:write",
        "--ttl",
        "120",
        env={"NOTIFACTOR_JWT_SECRET": SECRET, "NOTIFACTOR_JWT_ISSUER": "https://issuer.test"},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(
        result.stdout.strip(), SECRET, algorithms=["HS256"], issuer="https://issuer.test"
    )
    assert claims["tenant_id"] == "acme"
    assert claims["sub"] == "user-1"
    assert claims["scope"] == "admin notifications:write"
    assert 100 <= claims["exp"] - time.time() <= 125


def test_token_reads_the_generated_secret_file(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_text(SECRET + "\n", encoding="utf-8")
    result = run_cli(
        "token", "--tenant", "acme", "--sub", "u", env={"NOTIFACTOR_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    assert jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])["sub"] == "u"


def test_token_without_any_secret_explains(tmp_path: Path) -> None:
    result = run_cli(
        "token", "--tenant", "acme", "--sub", "u", env={"NOTIFACTOR_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "jwt_secret: not set" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "bad tenant", "--sub", "u"], "--tenant: must match"),
        (["--tenant", "t", "--sub", "x" * 200], "--sub: must match"),
        (["--tenant", "t", "--sub", "u", "--ttl", "0"], "--ttl: must be 1.."),
    ],
)
def test_token_rejects_bad_arguments(args: list[str], message: str) -> None:
    result = run_cli("token", *args, env={"NOTIFACTOR_JWT_SECRET": SECRET})
    assert result.returncode == 2
    assert message in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli("launch")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_public_key_is_a_configuration_error_at_start(tmp_path: Path) -> None:
    """A gateway with key material it cannot use stops at once (exit 2), not 500 per request."""
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    env = {
        "NOTIFACTOR_DATA_DIR": str(tmp_path),
        "NOTIFACTOR_REDIS_URL": "redis://127.0.0.1:1/0",
        "NOTIFACTOR_JWT_ALGORITHM": "ES256",
        "NOTIFACTOR_JWT_PUBLIC_KEY_FILE": str(pem),
    }
    result = run_cli("gateway", env=env, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "notifactor: configuration error: jwt_public_key_file: not a usable ES256 public key"
    )


def test_a_data_dir_where_the_embedded_server_cannot_live_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    (tmp_path / "redis").write_text("a file where the server's directory should be")
    result = run_cli("serve", env={"NOTIFACTOR_DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("notifactor: configuration error: data_dir: cannot use")
    assert "Traceback" not in result.stderr + result.stdout
