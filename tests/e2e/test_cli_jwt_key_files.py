"""`notifactor gateway` with JWT key files it cannot use: one line, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.e2e.test_cli import run_cli

_NOBODY = ("--reuid=65534", "--regid=65534", "--clear-groups")
BASE_ENV = {"NOTIFACTOR_REDIS_URL": "redis://127.0.0.1:1/0", "NOTIFACTOR_HTTP_PORT": "0"}


def _assert_one_config_line(stderr: str, key: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"notifactor: configuration error: {key}: "), stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("key", "content"),
    [
        ("jwt_public_key_file", b"\x30\x82\x01\x22\xff"),
        ("jwt_public_key_file", b"garbage\n"),
        ("jwt_jwks_file", b"[1, 2]"),
        ("jwt_jwks_file", b'{"keys": [5]}'),
    ],
)
@pytest.mark.parametrize("algorithm", [None, "RS256"])
def test_a_malformed_key_file_stops_the_gateway_with_one_line(
    tmp_path: Path, key: str, content: bytes, algorithm: str | None
) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    env = {**BASE_ENV, "NOTIFACTOR_DATA_DIR": str(tmp_path), f"NOTIFACTOR_{key.upper()}": str(path)}
    if algorithm is not None:
        env["NOTIFACTOR_JWT_ALGORITHM"] = algorithm
    result = run_cli("gateway", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    _assert_one_config_line(result.stderr, key)


def test_an_unreadable_key_file_stops_the_gateway_with_one_line() -> None:
    # Outside pytest's private tmp dirs: an unprivileged user must reach the file.
    workdir = Path(tempfile.mkdtemp(prefix="nf-unreadable-key-"))
    try:
        workdir.chmod(0o777)
        pem = workdir / "key.pem"
        pem.write_text("-----BEGIN PUBLIC KEY-----\n")
        pem.chmod(0)
        env = {
            **BASE_ENV,
            "NOTIFACTOR_DATA_DIR": str(workdir / "var"),
            "NOTIFACTOR_JWT_PUBLIC_KEY_FILE": str(pem),
            "NOTIFACTOR_JWT_ALGORITHM": "RS256",
        }
        result = _run_gateway_unprivileged(env, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert result.returncode == 2, result.stderr
    _assert_one_config_line(result.stderr, "jwt_public_key_file")
    assert "cannot read" in result.stderr


def _run_gateway_unprivileged(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``notifactor gateway``; as root (which reads any file) under an unprivileged user."""
    if os.geteuid() != 0:
        return run_cli("gateway", env=env, cwd=cwd)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv")
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    return subprocess.run(
        [setpriv, *_NOBODY, sys.executable, "-m", "notifactor", "gateway"],
        capture_output=True,
        text=True,
        env={**base, **env},
        cwd=cwd,
        timeout=60,
        check=False,
    )
