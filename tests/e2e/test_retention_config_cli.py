"""A retention longer than storage can keep stops the process at once: exit 2, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifactor.domain.retention import MAX_RETENTION_DAYS
from tests.e2e.test_cli import run_cli


@pytest.mark.parametrize("command", [["serve"], ["migrate"]])
def test_a_retention_too_long_for_storage_is_one_line_and_exit_2(
    tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "notifactor.toml"
    config.write_text('[tenants."acme"]\nretention_days = 36500\n', encoding="utf-8")
    result = run_cli(*command, "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "notifactor: configuration error: tenants.acme.retention_days: "
        f"must be <= {MAX_RETENTION_DAYS}"
    )
    assert "Traceback" not in result.stderr + result.stdout
