"""The embedded store: one SQLite file in WAL mode behind the storage port.

One connection, used by one worker thread at a time (a ``CapacityLimiter`` of
1 around ``trio.to_thread.run_sync``), so SQLite never sees concurrent use and
the Trio loop never blocks on disk. Every query is parameterised. The schema
is created on open.

Delivery statuses merge with a conditional upsert that mirrors
:func:`notifactor.domain.delivery_state.merge`: the stored state is replaced
only by a greater (rank, event time, error) and ``attempts`` keeps the maximum.

One concept per module:

* :mod:`.store`: :class:`SqliteNotificationStore`, the port's methods;
* :mod:`.schema`: the tables and indexes, and the schema version;
* :mod:`.connection`: opening the file (pragmas, schema);
* :mod:`.execution`: running work on the connection, one thread at a time;
* :mod:`.errors`: SQLite errors as the port's store errors;
* :mod:`.rows`: the rows each record is written as, and their statements;
* :mod:`.writes`: writing rows in one transaction, and purging expired ones;
* :mod:`.reads`: one notification, the inbox, and each listing's query;
* :mod:`.paging`: newest-first keyset bounds, and the next page's cursor.
"""

from notifactor.adapters.sqlite_store.store import SqliteNotificationStore

__all__ = ["SqliteNotificationStore"]
