"""`notifactor tree` against a running `notifactor serve`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .test_serve import ServeProcess, free_port, serve

__all__ = ["serve"]

pytestmark = pytest.mark.e2e


def _tree(serve: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifactor", "tree", *args],
        env=serve.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_tree_prints_the_live_supervision_tree(serve: ServeProcess) -> None:
    result = _tree(serve, "--url", serve.base_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("root [supervisor] running")
    assert "restarts=0" in lines[0]
    text = result.stdout
    for node in ("redis [worker] running", "services [supervisor]", "gateway [supervisor]"):
        assert node in text
    assert any(line.lstrip("│ ").endswith("── http [worker] running restarts=0") for line in lines)


def test_tree_json_and_operator_admin_token(serve: ServeProcess) -> None:
    token = serve.token("ops", "operator-1", scope="admin")
    result = _tree(serve, "--url", serve.base_url, "--token", token, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["id"] == "root"
    assert [child["id"] for child in document["children"]][-1] == "services"
    # A tenant's admin scope is for its own tenant; the tree is process-wide.
    tenant_admin = serve.token("acme", "admin-1", scope="admin")
    refused = _tree(serve, "--url", serve.base_url, "--token", tenant_admin)
    assert refused.returncode == 1
    assert "403" in refused.stderr


def test_tree_refusals_are_one_line(serve: ServeProcess) -> None:
    token = serve.token("acme", "user-1")
    refused = _tree(serve, "--url", serve.base_url, "--token", token)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "403" in refused.stderr
    unreachable = _tree(serve, "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
