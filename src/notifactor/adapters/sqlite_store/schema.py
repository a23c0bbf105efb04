"""The database's tables and indexes, and the schema version recorded on open.

Plain SQL text; :mod:`~notifactor.adapters.sqlite_store.connection` runs it.
Every record table carries ``expires_us`` (indexed) for the retention purge.
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY, applied_at_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    tenant_id TEXT NOT NULL, id TEXT NOT NULL, user_id TEXT NOT NULL, channel TEXT NOT NULL,
    content TEXT NOT NULL, priority TEXT NOT NULL, metadata TEXT NOT NULL,
    created_us INTEGER NOT NULL, expires_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notifications_by_time ON notifications (tenant_id, created_us, id);
CREATE INDEX IF NOT EXISTS notifications_by_user
    ON notifications (tenant_id, user_id, created_us, id);
CREATE INDEX IF NOT EXISTS notifications_by_expiry ON notifications (expires_us);
CREATE TABLE IF NOT EXISTS delivery_status (
    tenant_id TEXT NOT NULL, notification_id TEXT NOT NULL, recipient_id TEXT NOT NULL,
    state TEXT NOT NULL, rank INTEGER NOT NULL, event_us INTEGER NOT NULL,
    last_error TEXT NOT NULL, attempts INTEGER NOT NULL, expires_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, notification_id, recipient_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivery_status_by_expiry ON delivery_status (expires_us);
CREATE TABLE IF NOT EXISTS tenant_audit_log (
    tenant_id TEXT NOT NULL, event_id TEXT NOT NULL, event_us INTEGER NOT NULL,
    event_type TEXT NOT NULL, metadata TEXT NOT NULL, expires_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_by_time ON tenant_audit_log (tenant_id, event_us, event_id);
CREATE INDEX IF NOT EXISTS audit_by_expiry ON tenant_audit_log (expires_us);
CREATE TABLE IF NOT EXISTS dlq (
    tenant_id TEXT NOT NULL, dead_us INTEGER NOT NULL, notification_id TEXT NOT NULL,
    user_id TEXT NOT NULL, channel TEXT NOT NULL, reason TEXT NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT, trace_id TEXT, created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, dead_us, notification_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dlq_by_expiry ON dlq (expires_us);
"""

#: Records :data:`SCHEMA_VERSION` (and when) once; parameters ``(version, applied_at_us)``.
RECORD_VERSION: Final = (
    "INSERT OR IGNORE INTO schema_version (version, applied_at_us) VALUES (?, ?)"
)

#: The tables whose rows expire, in the order the purge deletes from them,
#: each with its primary key (the purge deletes batches of rows by key).
EXPIRING_TABLES: Final = {
    "notifications": ("tenant_id", "id"),
    "delivery_status": ("tenant_id", "notification_id", "recipient_id"),
    "tenant_audit_log": ("tenant_id", "event_id"),
    "dlq": ("tenant_id", "dead_us", "notification_id"),
}

#: The tables whose rows carry their record time (the time retention counts
#: from), each with that column; indexed after ``tenant_id``, so the purge
#: finds a tenant's rows past its current retention by an index range. A
#: status has no time of its own: it goes with its notification.
RECORD_TIMES: Final = {
    "notifications": "created_us",
    "tenant_audit_log": "event_us",
    "dlq": "dead_us",
}
