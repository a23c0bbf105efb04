"""The production store: Cassandra behind the storage port.

Writes never read first and never use lightweight transactions; every row
carries an explicit ``USING TIMESTAMP``, so replays and reordered updates
converge on the same cells (the rules are in
:mod:`~notifactor.adapters.cassandra_store.writes`). Statements are prepared
once, grouped by partition into unlogged batches, and sent concurrently under
one ``trio.CapacityLimiter``. TTLs count from each record's own time (tenant
``retention_days``). Driver errors a retry may cure become
:class:`~notifactor.ports.notification_store.TransientStoreError`.

One concept per module:

* :mod:`.store`: :class:`CassandraNotificationStore`, the port's methods;
* :mod:`.statements`: the CQL text, and preparing it;
* :mod:`.writes`: the rows, timestamps and TTLs each record is written as;
* :mod:`.batches`: grouping row writes into per-partition unlogged batches;
* :mod:`.bucket_index`: which days of a listing hold rows;
* :mod:`.reads`: one notification, the inbox, and each listing's rows;
* :mod:`.paging`: newest-first keyset scans across days, and their cursors;
* :mod:`.execution`: sending statements under the limiter;
* :mod:`.errors`: driver errors as the port's store errors.
"""

from notifactor.adapters.cassandra_store.paging import SCAN_BUDGET
from notifactor.adapters.cassandra_store.store import CassandraNotificationStore

__all__ = ["SCAN_BUDGET", "CassandraNotificationStore"]
