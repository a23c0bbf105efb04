"""Where the HS256 secret comes from: configuration, else a file in the data dir."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from notifactor.config import Config
from notifactor.errors import ConfigError

SECRET_FILE_NAME = "jwt_secret"


def secret_file(config: Config) -> Path:
    """The file ``serve`` generates the development secret into."""
    return (config.data_dir / SECRET_FILE_NAME).absolute()


def resolve_jwt_secret(config: Config, *, create: bool) -> tuple[str, Path | None]:
    """The HS256 secret and, when it lives in a file, that file's path.

    Args:
        config: the process configuration; ``jwt_secret`` wins when set.
        create: generate the file when it does not exist (``serve`` does; the
            ``token`` command only reads it).

    Raises:
        ConfigError: no secret is configured and none can be read or created.
    """
    if config.jwt_secret is not None:
        return config.jwt_secret, None
    path = secret_file(config)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if not create:
            raise ConfigError(
                "jwt_secret",
                f"not set and {path} does not exist: set NOTIFACTOR_JWT_SECRET "
                "or run `notifactor serve` once to generate it",
            ) from None
        return _create(path), path
    except OSError as exc:
        raise ConfigError("jwt_secret", f"cannot read {path}: {exc}") from None
    if len(text.encode()) < 32:
        raise ConfigError("jwt_secret", f"{path} holds fewer than 32 bytes")
    return text, path


def _create(path: Path) -> str:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot create {path}: {exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
