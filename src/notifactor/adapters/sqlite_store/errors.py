"""Translation of ``sqlite3`` errors into the storage port's errors.

Which class a failure gets decides whether the storage writer retries it: a
lock held by another process (or a busy database) is
:class:`~notifactor.ports.notification_store.TransientStoreError`; anything
else is a plain :class:`~notifactor.ports.notification_store.StoreError`.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from notifactor.ports.notification_store import StoreError, TransientStoreError

_TRANSIENT_MESSAGES: Final = ("database is locked", "database table is locked", "busy")


def is_transient(error: sqlite3.Error) -> bool:
    """Whether a retry may cure ``error`` (a lock or a busy database)."""
    return isinstance(error, sqlite3.OperationalError) and any(
        marker in str(error).lower() for marker in _TRANSIENT_MESSAGES
    )


def as_store_error(error: sqlite3.Error) -> StoreError:
    """The port's error for ``error``, transient when a retry may cure it."""
    if is_transient(error):
        return TransientStoreError(f"sqlite: {error}")
    return StoreError(f"sqlite: {error}")
