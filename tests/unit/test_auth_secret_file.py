"""The generated HS256 secret file: concurrent first starts and interrupted writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notifactor.auth import secret as secret_mod
from notifactor.config import Config
from notifactor.errors import ConfigError

OTHER_SECRET = "A" * 48


def test_a_start_racing_another_waits_for_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B finds no file; A creates it and has not written yet; B must get A's secret."""
    config = Config(data_dir=tmp_path)
    path = secret_mod.secret_file(config)
    real_read_text = Path.read_text
    state = {"reads": 0}

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self == path and state["reads"] == 0:
            state["reads"] += 1
            try:
                return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]
            finally:  # meanwhile A has created the file and not written it yet
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    def pause(_seconds: float) -> None:  # A finishes its write while B waits
        path.write_text(OTHER_SECRET + "\n", encoding="utf-8")

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(secret_mod.time, "sleep", pause)
    secret, where = secret_mod.resolve_jwt_secret(config, create=True)
    assert secret == OTHER_SECRET
    assert where == path


def test_an_empty_secret_file_is_a_clear_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(data_dir=tmp_path)
    secret_mod.secret_file(config).write_text("")
    monkeypatch.setattr(secret_mod.time, "sleep", lambda _s: None)
    for create in (True, False):
        with pytest.raises(ConfigError, match=r"^jwt_secret: .* fewer than 32 bytes"):
            secret_mod.resolve_jwt_secret(config, create=create)


def test_a_write_interrupted_before_the_file_is_complete_leaves_no_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(data_dir=tmp_path)
    path = secret_mod.secret_file(config)

    def crash(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(secret_mod.os, "fsync", crash)
        with pytest.raises(ConfigError, match=r"^data_dir: cannot create"):
            secret_mod.resolve_jwt_secret(config, create=True)
    assert not path.exists()
    secret, _ = secret_mod.resolve_jwt_secret(config, create=True)
    assert len(secret) >= 32
    assert path.read_text(encoding="utf-8").strip() == secret
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["jwt_secret"]
    assert secret_mod.resolve_jwt_secret(config, create=False)[0] == secret
