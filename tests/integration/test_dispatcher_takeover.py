"""A dispatcher process killed with SIGKILL mid-stream; another takes over its entries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import coredis
import trio

from notifactor.adapters.redis_dispatch import DEFAULT_GROUP
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.envelope import ENVELOPE_FIELD, Envelope, encode_envelope
from notifactor.domain.partitioning import partition_for
from tests.integration.dispatcher_harness import (
    FAST,
    dispatcher_config,
    make_envelope,
    open_store,
    pending_by_consumer,
    pending_count,
    running_dispatcher,
)

PARTITIONS = 4


def _env(redis_url: str, db: Path, instance: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env.update(
        NOTIFACTOR_REDIS_URL=redis_url,
        NOTIFACTOR_STORAGE_URL=f"sqlite:///{db}",
        NOTIFACTOR_DATA_DIR=str(db.parent),
        NOTIFACTOR_INSTANCE_ID=instance,
        NOTIFACTOR_SUPERVISION__PARTITIONS=str(PARTITIONS),
        NOTIFACTOR_LOG_FORMAT="console",
    )
    return env


async def _consumer_pending(redis: coredis.Redis[bytes], streams: list[str], name: str) -> int:
    total = 0
    for stream in streams:
        total += (await pending_by_consumer(redis, stream, DEFAULT_GROUP)).get(name.encode(), 0)
    return total


async def _add(
    redis: coredis.Redis[bytes], streams: list[str], envelopes: list[Envelope]
) -> list[str]:
    """XADD ``envelopes`` to their partitions; their entry ids, in order."""
    async with redis.pipeline(transaction=False) as pipe:
        for envelope in envelopes:
            partition = partition_for("tenant-a", envelope.user_id, PARTITIONS)
            pipe.xadd(streams[partition], {ENVELOPE_FIELD: encode_envelope(envelope)})
    return [i.decode() if isinstance(i, bytes) else str(i) for i in pipe.results or ()]


async def _feed_until_pending(
    redis: coredis.Redis[bytes],
    streams: list[str],
    name: str,
    added: tuple[list[Envelope], list[str]],
    users: int,
) -> None:
    """Add notifications until the consumer ``name`` holds some it has not acknowledged.

    A fast consumer on a busy host can finish a batch between two looks, so
    more are added (kept in ``added``: envelopes and entry ids) until one
    look catches it.
    """
    with trio.fail_after(30):
        while True:
            batch = [make_envelope("tenant-a", f"user-{i % users}") for i in range(500)]
            added[1].extend(await _add(redis, streams, batch))
            added[0].extend(batch)
            with trio.move_on_after(0.5):
                while not await _consumer_pending(redis, streams, name):  # noqa: ASYNC110 - Redis is another system
                    await trio.sleep(0.001)
                return


async def test_sigkilled_dispatcher_entries_are_taken_over(
    redis_client: coredis.Redis[bytes], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    async with open_store(db):
        pass  # create the schema before two processes race to
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "notifactor.dispatcher",
            "--prefix",
            redis_prefix,
            "--block-ms",
            "100",
            "--claim-idle-ms",
            "60000",
        ],
        env=_env(redis_url, db, "dispatcher-a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(20):
            assert (await process.stdout.receive_some(64)).startswith(b"ready")
        streams = [f"{redis_prefix}stream:{p}" for p in range(PARTITIONS)]
        envelopes = [make_envelope("tenant-a", f"user-{i % 50}") for i in range(3000)]
        entry_ids = await _add(redis_client, streams, envelopes)
        # Kill it while it holds unacknowledged entries.
        if not await _consumer_pending(redis_client, streams, "dispatcher-a"):
            added = (envelopes, entry_ids)
            await _feed_until_pending(redis_client, streams, "dispatcher-a", added, 50)
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    left_pending = await _consumer_pending(redis_client, streams, "dispatcher-a")
    assert left_pending > 0

    settings = attrs.evolve(FAST, stale_consumer_idle_ms=1_000)
    config = dispatcher_config(partitions=PARTITIONS, instance_id="dispatcher-b")
    async with (
        open_store(db) as store,
        running_dispatcher(
            redis_client, store, redis_prefix, config=config, settings=settings
        ) as h,
    ):
        states = await h.wait_states(envelopes, lambda s: s is DeliveryState.PENDING)
        assert len(states) == len(envelopes)
        with trio.fail_after(10):
            while True:
                names: set[object] = set()
                for stream in streams:
                    for info in await redis_client.xinfo_consumers(stream, DEFAULT_GROUP):
                        names.add(info[b"name"])
                if b"dispatcher-a" not in names:
                    break
                await trio.sleep(0.1)
        for stream in streams:
            assert await pending_count(redis_client, stream, DEFAULT_GROUP) == 0


async def test_sigterm_finishes_acks_and_leaves_the_group(
    redis_client: coredis.Redis[bytes], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    async with open_store(db):
        pass
    streams = [f"{redis_prefix}stream:{p}" for p in range(PARTITIONS)]
    envelopes = [make_envelope("tenant-a", f"user-{i % 20}") for i in range(500)]
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "notifactor.dispatcher", "--prefix", redis_prefix],
        env=_env(redis_url, db, "dispatcher-graceful"),
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.log").open("wb"),
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(20):
            assert (await process.stdout.receive_some(64)).startswith(b"ready")
        entry_ids = await _add(redis_client, streams, envelopes)
        if not await _consumer_pending(redis_client, streams, "dispatcher-graceful"):
            added = (envelopes, entry_ids)
            await _feed_until_pending(redis_client, streams, "dispatcher-graceful", added, 20)
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # Whatever it had read is acknowledged, and it left every group it was in.
    log = (tmp_path / "stderr.log").read_text()
    assert await _consumer_pending(redis_client, streams, "dispatcher-graceful") == 0, log
    for stream in streams:
        names = [i[b"name"] for i in await redis_client.xinfo_consumers(stream, DEFAULT_GROUP)]
        assert b"dispatcher-graceful" not in names
    # Every entry it took is stored; what is not stored was never read.
    last_read: dict[str, tuple[int, int]] = {}
    for stream in streams:
        for info in await redis_client.xinfo_groups(stream):
            ms, seq = info[b"last-delivered-id"].decode().split("-")  # type: ignore[union-attr]
            last_read[stream] = (int(ms), int(seq))
    async with open_store(db) as store:
        for envelope, entry_id in zip(envelopes, entry_ids, strict=True):
            if await store.get_notification("tenant-a", envelope.id) is None:
                partition = partition_for("tenant-a", envelope.user_id, PARTITIONS)
                ms, seq = entry_id.split("-")
                assert (int(ms), int(seq)) > last_read[streams[partition]]
