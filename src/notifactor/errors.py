"""Errors that cross module boundaries and reach the operator."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration value is missing, malformed or inconsistent.

    The CLI prints ``str(error)`` as one line and exits with status 2, so the
    message must name the key and say why, and nothing else.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class FieldValueError(ValueError):
    """A cross-field check failed; ``key`` names the field the operator should change.

    Raised from ``__attrs_post_init__`` of configuration classes, where the
    failing field cannot be told from the validator that ran.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
