"""The CQL text of every statement the store sends, and its preparation.

Every statement is prepared once per store against one keyspace (``{ks}`` in
the text) and marked idempotent: each write carries its own ``USING
TIMESTAMP``, so the driver may retry or speculatively resend any of them
without changing the outcome.
"""

from __future__ import annotations

from typing import Final

from cassandra.query import PreparedStatement

from notifactor.adapters.cassandra_session import CassandraSession
from notifactor.adapters.cassandra_store.errors import translated_errors

#: CQL text by statement name; ``{ks}`` is the keyspace.
CQL: Final = {
    "insert_notification": (
        "INSERT INTO {ks}.notifications (tenant_id, notification_id, user_id, channel, content,"
        " priority, metadata, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " USING TIMESTAMP ? AND TTL ?"
    ),
    "insert_inbox": (
        "INSERT INTO {ks}.inbox_by_user (tenant_id, user_id, day, created_us, notification_id,"
        " channel, content, priority, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " USING TIMESTAMP ? AND TTL ?"
    ),
    "insert_history": (
        "INSERT INTO {ks}.deliveries_by_tenant (tenant_id, day, created_us, notification_id,"
        " recipient_id, channel) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    ),
    "insert_bucket": (
        "INSERT INTO {ks}.bucket_index (tenant_id, scope, day) VALUES (?, ?, ?) USING TTL ?"
    ),
    "status_state": (
        "UPDATE {ks}.delivery_status USING TIMESTAMP ? AND TTL ?"
        " SET state = ?, last_error = ?, updated_us = ?"
        " WHERE tenant_id = ? AND notification_id = ? AND recipient_id = ?"
    ),
    "status_attempts": (
        "UPDATE {ks}.delivery_status USING TIMESTAMP ? AND TTL ? SET attempts = ?"
        " WHERE tenant_id = ? AND notification_id = ? AND recipient_id = ?"
    ),
    "inbox_state": (
        "UPDATE {ks}.inbox_by_user USING TIMESTAMP ? AND TTL ?"
        " SET state = ?, last_error = ?, updated_us = ?"
        " WHERE tenant_id = ? AND user_id = ? AND day = ? AND created_us = ?"
        " AND notification_id = ?"
    ),
    "inbox_attempts": (
        "UPDATE {ks}.inbox_by_user USING TIMESTAMP ? AND TTL ? SET attempts = ?"
        " WHERE tenant_id = ? AND user_id = ? AND day = ? AND created_us = ?"
        " AND notification_id = ?"
    ),
    "history_state": (
        "UPDATE {ks}.deliveries_by_tenant USING TIMESTAMP ? AND TTL ?"
        " SET state = ?, last_error = ?, updated_us = ?"
        " WHERE tenant_id = ? AND day = ? AND created_us = ? AND notification_id = ?"
        " AND recipient_id = ?"
    ),
    "history_attempts": (
        "UPDATE {ks}.deliveries_by_tenant USING TIMESTAMP ? AND TTL ? SET attempts = ?"
        " WHERE tenant_id = ? AND day = ? AND created_us = ? AND notification_id = ?"
        " AND recipient_id = ?"
    ),
    "insert_audit": (
        "INSERT INTO {ks}.tenant_audit_log (tenant_id, day, event_us, event_id, event_type,"
        " metadata) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    ),
    "insert_dlq": (
        "INSERT INTO {ks}.dlq_by_tenant (tenant_id, day, dead_us, notification_id, user_id,"
        " channel, reason, attempts, last_error, trace_id, created_us)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    ),
    "select_notification": (
        "SELECT tenant_id, notification_id, user_id, channel, content, priority, metadata,"
        " created_us FROM {ks}.notifications WHERE tenant_id = ? AND notification_id = ?"
    ),
    "select_status": (
        "SELECT state, attempts, last_error, updated_us FROM {ks}.delivery_status"
        " WHERE tenant_id = ? AND notification_id = ? AND recipient_id = ?"
    ),
    "buckets_desc": (
        "SELECT day FROM {ks}.bucket_index WHERE tenant_id = ? AND scope = ?"
        " AND day <= ? AND day >= ?"
    ),
    "buckets_asc": (
        "SELECT day FROM {ks}.bucket_index WHERE tenant_id = ? AND scope = ? AND day >= ?"
        " ORDER BY day ASC"
    ),
    "history_page": (
        "SELECT created_us, notification_id, recipient_id, channel, state, attempts, last_error,"
        " updated_us FROM {ks}.deliveries_by_tenant WHERE tenant_id = ? AND day = ?"
        " AND (created_us, notification_id, recipient_id) < (?, ?, ?) LIMIT ?"
    ),
    "inbox_desc_page": (
        "SELECT created_us, notification_id, channel, state, attempts, last_error, updated_us,"
        " content FROM {ks}.inbox_by_user WHERE tenant_id = ? AND user_id = ? AND day = ?"
        " AND (created_us, notification_id) < (?, ?)"
        " ORDER BY created_us DESC, notification_id DESC LIMIT ?"
    ),
    "inbox_asc_page": (
        "SELECT created_us, notification_id, channel, content, priority, metadata, state,"
        " updated_us FROM {ks}.inbox_by_user WHERE tenant_id = ? AND user_id = ? AND day = ?"
        " AND (created_us, notification_id) > (?, ?) LIMIT ?"
    ),
    "audit_page": (
        "SELECT event_us, event_id, event_type, metadata FROM {ks}.tenant_audit_log"
        " WHERE tenant_id = ? AND day = ? AND (event_us, event_id) < (?, ?) LIMIT ?"
    ),
    "dlq_page": (
        "SELECT dead_us, notification_id, user_id, channel, reason, attempts, last_error,"
        " trace_id, created_us FROM {ks}.dlq_by_tenant WHERE tenant_id = ? AND day = ?"
        " AND (dead_us, notification_id) < (?, ?) LIMIT ?"
    ),
}


async def prepare_statements(
    session: CassandraSession, keyspace: str
) -> dict[str, PreparedStatement]:
    """Prepare every statement of :data:`CQL` against ``keyspace``, by name.

    Args:
        keyspace: a name already checked by
            :func:`~notifactor.adapters.cassandra_schema.check_keyspace_name`,
            since it is formatted into the CQL text.
    """
    prepared: dict[str, PreparedStatement] = {}
    with translated_errors():
        for name, cql in CQL.items():
            statement = await session.prepare(cql.format(ks=keyspace))
            statement.is_idempotent = True
            prepared[name] = statement
    return prepared
