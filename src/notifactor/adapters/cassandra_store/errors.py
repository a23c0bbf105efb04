"""Translation of cassandra-driver errors into the storage port's errors.

The session bridge lets driver exceptions through unchanged; the store is
where they become :class:`~notifactor.ports.notification_store.StoreError`,
so callers above the port never import the driver. Which class a failure gets
decides whether the storage writer retries it, so the transient list is an
allow-list: only errors a retry may cure are
:class:`~notifactor.ports.notification_store.TransientStoreError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from cassandra import (
    CoordinationFailure,
    OperationTimedOut,
    Timeout,
    Unavailable,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException

from notifactor.ports.notification_store import StoreError, TransientStoreError

_TRANSIENT: Final = (
    Unavailable,
    Timeout,
    OperationTimedOut,
    NoHostAvailable,
    CoordinationFailure,
    ConnectionException,
)


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise driver errors inside the block as the port's store errors.

    Errors that are not the driver's (and store errors already translated)
    pass through unchanged.
    """
    try:
        yield
    except _TRANSIENT as error:
        raise TransientStoreError(f"cassandra: {type(error).__name__}: {error}") from error
    except StoreError:
        raise
    except Exception as error:
        # Anything else the driver raises (InvalidRequest, ...) is permanent.
        if type(error).__module__.startswith("cassandra"):
            raise StoreError(f"cassandra: {type(error).__name__}: {error}") from error
        raise
