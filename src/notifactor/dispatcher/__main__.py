"""``python -m notifactor.dispatcher``: one standalone dispatcher process.

The same dispatcher as ``notifactor dispatcher``, with knobs that only
process-level tests need (kill -9, takeover): a Redis key prefix to isolate
each test's streams, and shorter timings. It uses
the normal configuration (``--config`` / ``NOTIFACTOR_*``), an entered Redis
client, the configured store and a storage writer, prints ``ready`` once the
dispatcher runs and stops gracefully on SIGINT/SIGTERM.

Test-only knobs (``--prefix``, ``--claim-idle-ms``, ...) shorten timings and
isolate keys.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from notifactor.actors import ActorRef, run_actor
from notifactor.actors.storage_writer import (
    StorageWriterClient,
    WriterMessage,
)
from notifactor.adapters.redis_client import open_redis, pool_size_for
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.config import Config, load_config
from notifactor.dispatcher.runner import build_dispatcher, redis_deps
from notifactor.dispatcher.settings import DispatcherSettings, settings_from_config
from notifactor.runtime_tuning import tune_redis_client


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m notifactor.dispatcher")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--prefix", default="notifactor:", help="Redis key prefix")
    parser.add_argument("--block-ms", type=int, default=None)
    parser.add_argument("--claim-idle-ms", type=int, default=None)
    parser.add_argument("--claim-interval-s", type=float, default=None)
    parser.add_argument("--attempt-timeout-s", type=float, default=None)
    parser.add_argument("--stale-consumer-idle-ms", type=int, default=None)
    parser.add_argument("--maintenance-interval-s", type=float, default=None)
    return parser


def settings_from(args: argparse.Namespace, config: Config) -> DispatcherSettings:
    """The config's ``[dispatcher]`` section, with the command line's overrides."""
    overrides = {
        name: getattr(args, name)
        for name in (
            "block_ms",
            "claim_idle_ms",
            "claim_interval_s",
            "attempt_timeout_s",
            "stale_consumer_idle_ms",
            "maintenance_interval_s",
        )
        if getattr(args, name) is not None
    }
    # No WebSocket edge in this process: ``delivered`` is recorded on hand-off.
    return attrs.evolve(settings_from_config(config, mark_delivered_on_route=True), **overrides)


async def run_standalone(config: Config, settings: DispatcherSettings, keys: RedisKeys) -> None:
    from notifactor.storage_setup import open_store, storage_writer_for

    if config.redis_url is None:
        raise SystemExit("python -m notifactor.dispatcher needs NOTIFACTOR_REDIS_URL")
    partitions = config.supervision.partitions
    pool = pool_size_for(blocking_readers=partitions, concurrent_pipelines=partitions)
    async with (
        open_redis(config.redis_url, max_connections=pool) as redis,
        open_store(config) as store,
        trio.open_nursery() as nursery,
    ):
        ref: ActorRef[WriterMessage] = ActorRef("storage-writer", mailbox_size=1024)
        await nursery.start(run_actor, ref, lambda: storage_writer_for(config, store))
        writer = StorageWriterClient(ref)
        supervisor = build_dispatcher(
            config, redis_deps(config, redis, writer, settings=settings, keys=keys)
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as dispatcher_nursery:
                await dispatcher_nursery.start(supervisor.run)
                print("ready", flush=True)
                async for _ in signals:
                    supervisor.request_stop()
                    break
        # The dispatcher has finished its in-flight entries and left the
        # group; now the writer flushes what it still holds.
        with trio.move_on_after(config.shutdown_grace_s):
            await writer.flush()
        nursery.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = load_config(args.config)
    tune_redis_client(config.runtime)
    trio.run(run_standalone, config, settings_from(args, config), RedisKeys(prefix=args.prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
