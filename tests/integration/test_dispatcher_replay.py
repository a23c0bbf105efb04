"""DLQ replay: dry run, idempotency, audit, and the ``dlq list``/``replay`` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import attrs
import coredis
import msgspec
import trio

from notifactor.actors import ActorRef
from notifactor.actors.audit_trail import AuditTrail
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_dlq import DlqFilter, RedisDeadLetterQueue
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.dispatcher.replay import ReplayAction, ReplayService
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.rfc3339 import format_rfc3339
from notifactor.domain.routing import decode_routed
from tests.integration.dispatcher_harness import (
    append_dead_letter,
    dispatcher_config,
    make_envelope,
    open_store,
    running_dispatcher,
)
from tests.integration.test_dispatcher_failures import FlakyPresence

CONFIG = dispatcher_config(max_attempts=2, base_ms=5, cap_ms=10)


def _retention(tenant_id: str) -> int:
    return CONFIG.tenant_policy(tenant_id).retention_days


def _always_failing(deps: Any) -> Any:
    return attrs.evolve(deps, presence=FlakyPresence(deps.presence, failures=-1))


async def _make_dead_letters(redis: coredis.Redis[bytes], prefix: str, db: Path) -> list[Any]:
    dead = [
        make_envelope("tenant-a", "ua"),
        make_envelope("tenant-a", "ua"),
        make_envelope("tenant-b", "ub"),
    ]
    async with (
        open_store(db) as store,
        running_dispatcher(redis, store, prefix, config=CONFIG, wrap=_always_failing) as h,
    ):
        for envelope in dead:
            await h.publish(envelope)
        await h.publish_raw(0, {"envelope": b"garbage"})
        await h.wait_states(dead, lambda s: s is DeliveryState.DEAD)
    return dead


async def test_replay_is_dry_runnable_idempotent_and_audited(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    db = tmp_path / "n.db"
    dead = await _make_dead_letters(redis_client, redis_prefix, db)
    async with (
        open_store(db) as store,
        running_dispatcher(redis_client, store, redis_prefix, config=CONFIG) as h,
    ):
        await h.presence.register("tenant-a", "ua", "gw-1")
        service = ReplayService(
            RedisDeadLetterQueue(redis_client, keys=h.keys),
            store,
            partitions=h.partitions,
            retention_days=_retention,
        )
        records, cursor = await service.list(DlqFilter(), limit=10)
        assert cursor is None
        assert len(records) == 4
        assert [r.entry.reason for r in records].count("exhausted") == 3

        dry = await service.replay(DlqFilter(), dry_run=True)
        assert dry.count(ReplayAction.WOULD_REPLAY) == 3
        assert dry.count(ReplayAction.MALFORMED) == 1
        await trio.sleep(0.3)
        assert await h.gateway_messages("gw-1") == []  # nothing was enqueued

        started = trio.current_time()
        report = await service.replay(
            DlqFilter(tenant_id="tenant-a"), dry_run=False, rate_per_s=10, actor="alice"
        )
        assert report.count(ReplayAction.REPLAYED) == 2
        assert trio.current_time() - started >= 0.1  # paced at 10/s
        await h.wait_states(dead[:2], lambda s: s is DeliveryState.DELIVERED)

        again = await service.replay(DlqFilter(tenant_id="tenant-a"), dry_run=False)
        assert again.count(ReplayAction.ALREADY_DELIVERED) == 2
        by_id = DlqFilter(ids=frozenset({dead[2].id}))
        first = await service.replay(by_id, dry_run=False)
        second = await service.replay(by_id, dry_run=False)
        assert first.count(ReplayAction.REPLAYED) == 1
        assert second.count(ReplayAction.ALREADY_REPLAYED) == 1

        await trio.sleep(0.5)
        routed = [decode_routed(m).id for m in await h.gateway_messages("gw-1")]
        assert sorted(routed) == sorted(e.id for e in dead[:2])  # each exactly once

        audit = await store.list_audit("tenant-a")
        kinds = sorted(e.event_type for e in audit.items)
        assert kinds == ["dlq.replay", "dlq.replay", "dlq.replay.dry_run"]
        replay_event = next(
            e for e in audit.items if e.event_type == "dlq.replay" and e.metadata["replayed"]
        )
        assert replay_event.metadata["actor"] == "alice"
        assert sorted(replay_event.metadata["replayed"]) == sorted(e.id for e in dead[:2])


async def test_dlq_commands_list_and_dry_run(
    redis_client: coredis.Redis[bytes], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    db = tmp_path / "n.db"
    dead = await _make_dead_letters(redis_client, redis_prefix, db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env.update(
        NOTIFACTOR_REDIS_URL=redis_url,
        NOTIFACTOR_STORAGE_URL=f"sqlite:///{db}",
        NOTIFACTOR_DATA_DIR=str(tmp_path),
    )

    async def dlq(*argv: str) -> subprocess.CompletedProcess[bytes]:
        return await trio.run_process(
            [
                sys.executable,
                "-m",
                "notifactor",
                "dlq",
                *argv,
                "--prefix",
                redis_prefix,
            ],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )

    listed = await dlq("list", "--tenant", "tenant-a", "--reason", "exhausted")
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert sorted(line["notification_id"] for line in lines) == sorted(e.id for e in dead[:2])
    assert all(line["attempts"] == 2 and line["trace_id"] for line in lines)

    async def stream_entries() -> int:
        total = 0
        for p in range(CONFIG.supervision.partitions):
            total += await redis_client.xlen(f"{redis_prefix}stream:{p}")
        return total

    before = await stream_entries()
    dry = await dlq("replay", "--dry-run", "--tenant", "tenant-b")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True
    assert report["counts"] == {"would_replay": 1}
    assert await stream_entries() == before  # a dry run enqueues nothing

    bad = await dlq("list", "--since", "yesterday")
    assert bad.returncode == 2
    assert b"RFC 3339" in bad.stderr


SECRET = "admin-test-" + "s" * 40


async def test_admin_dlq_endpoints_list_and_replay_own_tenant_only(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    import time

    import pytest

    from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
    from notifactor.auth.tokens import mint_token
    from notifactor.auth.verify import build_verifier
    from notifactor.config import Config
    from notifactor.gateway import routes_admin
    from notifactor.gateway.context import Gateway
    from notifactor.gateway.http import Request
    from notifactor.gateway.problems import ProblemError

    db = tmp_path / "n.db"
    dead = await _make_dead_letters(redis_client, redis_prefix, db)
    config = Config(jwt_secret=SECRET, supervision=CONFIG.supervision)

    def token(tenant: str, scopes: tuple[str, ...] = ("admin",)) -> bytes:
        raw = mint_token(
            secret=SECRET,
            tenant_id=tenant,
            subject="ops",
            scopes=scopes,
            ttl_s=60,
            now=int(time.time()),
        )
        return f"Bearer {raw}".encode()

    def request(
        method: str, path: str, auth: bytes, query: bytes = b"", body: bytes = b""
    ) -> Request:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        headers = [(b"authorization", auth), (b"content-type", b"application/json")]
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query,
            "headers": headers,
        }
        return Request(scope, receive)

    async with open_store(db) as store:
        gateway = Gateway(
            config=config,
            verifier=build_verifier(config, hs256_secret=SECRET),
            ingest=RedisIngest(redis_client, IngestSettings()),
            store=store,
            audit=AuditTrail(ActorRef("audit", mailbox_size=64)),
            dlq=ReplayService(
                RedisDeadLetterQueue(redis_client, keys=RedisKeys(prefix=redis_prefix)),
                store,
                partitions=CONFIG.supervision.partitions,
                retention_days=_retention,
            ),
        )
        listed = await routes_admin.list_dlq(
            gateway, request("GET", "/v1/admin/dlq", token("tenant-a"), b"limit=10")
        )
        assert listed.status == 200
        page = json.loads(listed.body)
        assert sorted(i["notification_id"] for i in page["items"]) == sorted(e.id for e in dead[:2])
        assert page["next_cursor"] is None

        replay = await routes_admin.replay_dlq(
            gateway,
            request(
                "POST",
                "/v1/admin/dlq/replay",
                token("tenant-b"),
                body=json.dumps({"dry_run": True, "reason": "exhausted"}).encode(),
            ),
        )
        assert replay.status == 200
        assert json.loads(replay.body)["counts"] == {"would_replay": 1}  # tenant-b only

        with pytest.raises(ProblemError) as forbidden:
            await routes_admin.list_dlq(
                gateway,
                request("GET", "/v1/admin/dlq", token("tenant-a", ("notifications:read",))),
            )
        assert forbidden.value.problem.status == 403
        with pytest.raises(ProblemError) as invalid:
            await routes_admin.replay_dlq(
                gateway,
                request("POST", "/v1/admin/dlq/replay", token("tenant-a"), body=b'{"ids": 5}'),
            )
        assert invalid.value.problem.status == 422


class _RecordingStore:
    """Storage for the replay service: nothing delivered yet; audit events kept."""

    def __init__(self) -> None:
        self.audit: list[Any] = []

    async def get_notification(self, tenant_id: str, notification_id: str) -> None:
        return None

    async def append_audit(self, events: Any) -> None:
        self.audit.extend(events)


def _recording_replay(
    redis_client: coredis.Redis[bytes], keys: RedisKeys
) -> tuple[ReplayService, _RecordingStore]:
    """A replay service on one partition whose audit events are kept in the returned store."""
    store = _RecordingStore()
    service = ReplayService(
        RedisDeadLetterQueue(redis_client, keys=keys),
        cast(Any, store),
        partitions=1,
        retention_days=_retention,
    )
    return service, store


async def test_an_interrupted_paced_replay_loses_nothing_and_is_audited(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    """Cancelled while waiting for its pace: nothing is marked without its re-enqueue."""
    keys = RedisKeys(prefix=redis_prefix)
    now = datetime.now(UTC)
    envelopes = [make_envelope("tenant-a", f"user-{i}") for i in range(3)]
    for envelope in envelopes:
        await append_dead_letter(redis_client, keys.dlq, envelope, dead_at=now, last_error="x")
    service, store = _recording_replay(redis_client, keys)
    with trio.move_on_after(1.5):  # an operator's Ctrl-C during a --rate 1 replay
        await service.replay(DlqFilter(), dry_run=False, rate_per_s=1)
    requeued = await redis_client.xlen(keys.stream(0))
    assert requeued == 2  # at 0 s and 1 s; the third was waiting for its turn
    replayed_ids = [id_ for event in store.audit for id_ in event.metadata["replayed"]]
    assert len(replayed_ids) == 2  # what went out before the interruption is audited
    report = await service.replay(DlqFilter(), dry_run=False)
    counts = report.to_jsonable()["counts"]
    assert counts == {"replayed": 1, "skipped_already_replayed": 2}
    assert await redis_client.xlen(keys.stream(0)) == 3  # each dead letter exactly once


async def test_the_replay_audit_writes_its_time_filter_as_the_api_writes_times(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    keys = RedisKeys(prefix=redis_prefix)
    now = datetime.now(UTC)
    envelope = make_envelope("tenant-a", "user-1")
    await append_dead_letter(redis_client, keys.dlq, envelope, dead_at=now, last_error="x")
    service, store = _recording_replay(redis_client, keys)
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await service.replay(DlqFilter(since=since, until=now + timedelta(minutes=1)), dry_run=True)
    [event] = store.audit
    assert event.metadata["filter"]["since"] == "2026-01-02T03:04:05.000000Z"
    assert event.metadata["filter"]["until"] == format_rfc3339(now + timedelta(minutes=1))


SHORT_RETENTION_DAYS = 2
SHORT_CONFIG = attrs.evolve(
    CONFIG,
    tenants={
        "default": attrs.evolve(CONFIG.tenants["default"], retention_days=SHORT_RETENTION_DAYS)
    },
)


def _short_retention(tenant_id: str) -> int:
    return SHORT_CONFIG.tenant_policy(tenant_id).retention_days


@asynccontextmanager
async def _short_store(path: Path) -> AsyncIterator[SqliteNotificationStore]:
    """The store as ``SHORT_CONFIG`` opens it (the harness's keeps 30 days)."""
    store = await SqliteNotificationStore.open(path, _short_retention)
    try:
        yield store
    finally:
        await store.aclose()


async def test_a_dead_letter_past_retention_is_skipped_not_replayed(
    redis_client: coredis.Redis[bytes], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Accepted 5 days ago under a 2-day retention: reported ``skipped_expired``, never routed.

    Both ``notifactor dlq replay`` and the service (behind the admin endpoint)
    skip it, dry run or not; a dead letter still within retention replays.
    """
    db = tmp_path / "n.db"
    old = msgspec.structs.replace(
        make_envelope("tenant-a", "ua", content="past retention"),
        accepted_at=datetime.now(UTC) - timedelta(days=5),
    )
    fresh = make_envelope("tenant-a", "ua", content="within retention")
    async with (
        _short_store(db) as store,
        running_dispatcher(
            redis_client, store, redis_prefix, config=SHORT_CONFIG, wrap=_always_failing
        ) as h,
    ):
        await h.publish(old)
        await h.publish(fresh)
        await h.wait_dlq_entries(2)  # dead-lettered by the real dispatcher

    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env.update(
        NOTIFACTOR_REDIS_URL=redis_url,
        NOTIFACTOR_STORAGE_URL=f"sqlite:///{db}",
        NOTIFACTOR_DATA_DIR=str(tmp_path),
        NOTIFACTOR_TENANTS__DEFAULT__RETENTION_DAYS=str(SHORT_RETENTION_DAYS),
    )

    async def replay_command(*argv: str) -> dict[str, Any]:
        done = await trio.run_process(
            [sys.executable, "-m", "notifactor", "dlq", "replay", *argv, "--prefix", redis_prefix],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return cast(dict[str, Any], json.loads(done.stdout))

    dry = await replay_command("--dry-run", "--tenant", "tenant-a")
    assert dry["counts"] == {"skipped_expired": 1, "would_replay": 1}
    expired_item = next(i for i in dry["items"] if i["notification_id"] == old.id)
    assert expired_item["action"] == "skipped_expired"
    assert expired_item["reason"] == "exhausted"  # the dead letter's reason, unchanged
    by_cli = await replay_command("--id", old.id)
    assert by_cli["counts"] == {"skipped_expired": 1}

    async with (
        _short_store(db) as store,
        running_dispatcher(redis_client, store, redis_prefix, config=SHORT_CONFIG) as h,
    ):
        await h.presence.register("tenant-a", "ua", "gw-1")
        service = ReplayService(
            RedisDeadLetterQueue(redis_client, keys=h.keys),
            store,
            partitions=h.partitions,
            retention_days=_short_retention,
        )
        report = await service.replay(DlqFilter(tenant_id="tenant-a"), dry_run=False)
        assert report.to_jsonable()["counts"] == {"skipped_expired": 1, "replayed": 1}
        assert report.count(ReplayAction.EXPIRED) == 1
        await h.wait_states([fresh], lambda s: s is DeliveryState.DELIVERED)
        await trio.sleep(0.5)
        messages = await h.gateway_messages("gw-1")
        assert [decode_routed(m).id for m in messages] == [fresh.id]
        assert not any(b"past retention" in m for m in messages)
        assert await store.get_notification("tenant-a", old.id) is None
        audit = await store.list_audit("tenant-a")
        replay_event = next(e for e in audit.items if e.event_type == "dlq.replay")
        assert replay_event.metadata["replayed"] == [fresh.id]
        assert replay_event.metadata["skipped"] == 1
