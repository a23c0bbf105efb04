"""Where the HS256 secret comes from: configuration, else a file in the data dir."""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

from notifactor.config import Config
from notifactor.errors import ConfigError

SECRET_FILE_NAME = "jwt_secret"
MIN_SECRET_BYTES = 32
#: How often, and how far apart, a short secret file is read again before giving up.
_READ_ATTEMPTS = 20
_READ_PAUSE_S = 0.05


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
    text = _read_complete(path)
    if text is not None:
        return text, path
    if not create:
        raise ConfigError(
            "jwt_secret",
            f"not set and {path} does not exist: set NOTIFACTOR_JWT_SECRET "
            "or run `notifactor serve` once to generate it",
        )
    return _create(path), path


def _read(path: Path) -> str | None:
    """The stripped text of the secret file, or None when there is no file."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("jwt_secret", f"cannot read {path}: {exc}") from None


def _read_complete(path: Path) -> str | None:
    """The secret in ``path`` (None without a file), waiting briefly while it is short.

    A file written by another version (or by hand) may still be filling; past
    the wait a short secret is a configuration error, never a weak key.
    """
    for attempt in range(_READ_ATTEMPTS):
        text = _read(path)
        if text is None or len(text.encode()) >= MIN_SECRET_BYTES:
            return text
        if attempt + 1 < _READ_ATTEMPTS:
            time.sleep(_READ_PAUSE_S)
    raise ConfigError(
        "jwt_secret",
        f"{path} holds fewer than {MIN_SECRET_BYTES} bytes: remove it to generate "
        "a new one, or set NOTIFACTOR_JWT_SECRET",
    )


def _create(path: Path) -> str:
    """Generate the secret file; when another process won the race, its secret.

    The secret is written and flushed to a private temporary file first, then
    linked to its final name: the name never shows a partial secret, and the
    link fails if the name exists, so exactly one secret wins.
    """
    value = secrets.token_urlsafe(48)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _link_new(path, value)
    except FileExistsError:
        existing = _read_complete(path)
        if existing is None:
            raise ConfigError("jwt_secret", f"{path} vanished while being read") from None
        return existing
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot create {path}: {exc}") from None
    return value


def _link_new(path: Path, value: str) -> None:
    """Write ``value`` to a 0600 file beside ``path`` and link it there (exclusive)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    finally:
        os.unlink(temporary)
