"""Arguments of the console script: usage errors are one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from notifactor.config import load_config
from notifactor.errors import ConfigError
from notifactor.listen_check import check_can_listen, listen_addresses
from tests.e2e.cli_support import one_line

SECRET = "s" * 40


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "notifactor", *args],
        capture_output=True,
        text=True,
        env={**base, "NOTIFACTOR_JWT_SECRET": SECRET, **env},
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("ttl", ["1" + "0" * 30, str(10 * 366 * 86400), "0", "-5"])
@pytest.mark.parametrize("command", ["token", "listen"])
def test_a_ttl_out_of_range_is_a_usage_error(tmp_path: Path, command: str, ttl: str) -> None:
    result = run_cli(command, "--tenant", "acme", "--sub", "u1", "--ttl", ttl, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_line(result).startswith("notifactor: --ttl: must be 1..")


def test_a_ttl_of_ten_years_is_minted(tmp_path: Path) -> None:
    result = run_cli(
        "token", "--tenant", "acme", "--sub", "u1", "--ttl", str(315_360_000), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2


def test_config_is_accepted_before_the_subcommand(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('http_port = "eighty"\n', encoding="utf-8")
    result = run_cli("--config", str(config), "token", "--tenant", "a", "--sub", "b", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_line(result).startswith("notifactor: configuration error: http_port:")


def test_config_after_the_subcommand_wins(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('http_port = "eighty"\n', encoding="utf-8")
    good = tmp_path / "good.toml"
    good.write_text("http_port = 8081\n", encoding="utf-8")
    result = run_cli(
        "--config",
        str(bad),
        "token",
        "--config",
        str(good),
        "--tenant",
        "a",
        "--sub",
        "b",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "placement",
    [
        ("--config", "{bad}", "dlq", "list"),
        ("dlq", "--config", "{bad}", "list"),
        ("dlq", "list", "--config", "{bad}"),
        ("--config", "{good}", "dlq", "--config", "{bad}", "list"),
        ("dlq", "--config", "{good}", "list", "--config", "{bad}"),
    ],
)
def test_dlq_takes_config_before_or_after_each_word(
    tmp_path: Path, placement: tuple[str, ...]
) -> None:
    """The nearest --config wins; a bad one shows it was the one read (exit 2 naming its key)."""
    bad = tmp_path / "bad.toml"
    bad.write_text('http_port = "eighty"\n', encoding="utf-8")
    good = tmp_path / "good.toml"
    good.write_text("http_port = 8081\n", encoding="utf-8")
    args = [word.format(bad=bad, good=good) for word in placement]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_line(result).startswith("notifactor: configuration error: http_port:")


@pytest.mark.parametrize("url", ["notaurl", "ftp://h/x", "http://"])
def test_tree_with_a_bad_url_is_a_usage_error(tmp_path: Path, url: str) -> None:
    result = run_cli("tree", "--url", url, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_line(result).startswith("notifactor: --url: ")


@pytest.mark.parametrize(
    ("env", "key", "roles"),
    [
        ({"NOTIFACTOR_HTTP_HOST": "no-such-host.invalid"}, "http_host", {"gateway"}),
        ({"NOTIFACTOR_WS_HOST": "no-such-host.invalid"}, "ws_host", {"gateway"}),
        (
            {"NOTIFACTOR_OBSERVABILITY__METRICS_HOST": "no-such-host.invalid"},
            "observability.metrics_host",
            {"dispatcher"},
        ),
    ],
)
def test_a_host_that_does_not_resolve_names_the_host_key(
    env: dict[str, str], key: str, roles: set[str]
) -> None:
    config = load_config(
        None,
        env={
            "NOTIFACTOR_JWT_SECRET": SECRET,
            "NOTIFACTOR_HTTP_PORT": "18080",
            "NOTIFACTOR_WS_PORT": "18081",
            "NOTIFACTOR_OBSERVABILITY__METRICS_PORT": "19464",
            **env,
        },
    )
    with pytest.raises(ConfigError) as raised:
        check_can_listen(listen_addresses(config, frozenset(roles)))
    assert raised.value.key == key
