"""``notifactor dlq list`` and ``notifactor dlq replay`` (SPEC §1).

Wiring in ``notifactor.cli``::

    add_dlq_commands(commands, common)      # in build_parser()
    "dlq": run_dlq,                         # in main()'s handlers

Output is one JSON object per dead letter (``list``) or a JSON report
(``replay``), so scripts can consume it; ``--help`` documents every flag.
Exit codes: 0 done, 2 bad arguments or configuration, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_dlq import (
    DlqFilter,
    DlqRecord,
    RedisDeadLetterQueue,
    append_slack_ms,
    is_dlq_cursor,
)
from notifactor.config import Config, ConfigError
from notifactor.dispatcher.replay import ReplayService
from notifactor.domain.dlq_entry import DlqReason
from notifactor.domain.rfc3339 import format_rfc3339

EXIT_OK = 0
EXIT_USAGE = 2


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset (e.g. Z): {text!r}")
    return moment


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant's dead letters")
    parser.add_argument("--since", type=_timestamp, help="dead-lettered at or after (RFC 3339)")
    parser.add_argument("--until", type=_timestamp, help="dead-lettered before (RFC 3339)")
    parser.add_argument("--reason", choices=[r.value for r in DlqReason], help="only this reason")
    parser.add_argument(
        "--prefix", default="notifactor:", help=argparse.SUPPRESS
    )  # key prefix, for tests


def add_dlq_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common_parent: argparse.ArgumentParser,
) -> None:
    """Add ``dlq list`` and ``dlq replay`` to the ``notifactor`` parser."""
    # ``--config`` on ``dlq`` itself has a dest of its own: argparse lets a
    # nested parser's default overwrite a value its parent already parsed, so
    # the leaf's ``config`` wins, then this one, then the one before ``dlq``.
    dlq = subparsers.add_parser("dlq", help="inspect and replay dead letters")
    dlq.add_argument(
        "--config",
        dest="group_config",
        metavar="CONFIG",
        type=Path,
        default=None,
        help="TOML configuration file (also accepted after the action, where it wins)",
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", parents=[common_parent], help="print dead letters, newest first, one JSON per line"
    )
    _add_filters(listing)
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--cursor", help="continue after this DLQ id (printed last)")
    replay = actions.add_parser(
        "replay", parents=[common_parent], help="re-enqueue dead letters for delivery"
    )
    _add_filters(replay)
    replay.add_argument(
        "--id",
        dest="ids",
        action="append",
        help="only this notification id or DLQ id (repeatable)",
    )
    replay.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    replay.add_argument(
        "--rate", type=_rate, default=math.inf, help="at most N re-enqueues per second"
    )
    replay.add_argument(
        "--limit", type=int, default=10_000, help="at most this many dead letters (default 10000)"
    )
    replay.add_argument("--actor", default="cli", help="who replays (recorded in the audit log)")


def _redis_url(config: Config) -> str:
    if config.redis_url is not None:
        return config.redis_url
    socket = Path(config.data_dir) / "redis" / "redis.sock"
    if socket.exists():
        return f"unix://{socket.resolve()}"
    raise ConfigError(
        "redis_url", "dlq commands need NOTIFACTOR_REDIS_URL (or a running `notifactor serve`)"
    )


def _filter(args: argparse.Namespace) -> DlqFilter:
    ids = getattr(args, "ids", None)
    return DlqFilter(
        tenant_id=args.tenant,
        reason=args.reason,
        since=args.since,
        until=args.until,
        ids=frozenset(ids) if ids else None,
    )


def record_json(record: DlqRecord) -> dict[str, Any]:
    """A dead letter as printed by ``dlq list`` and served by the admin API."""
    entry = record.entry
    return {
        "dlq_id": record.stream_id,
        "notification_id": entry.notification_id,
        "tenant_id": entry.tenant_id,
        "user_id": entry.user_id,
        "channel": entry.channel,
        "reason": entry.reason,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "first_attempt_at": format_rfc3339(entry.first_attempt_at),
        "last_attempt_at": format_rfc3339(entry.last_attempt_at),
        "dead_at": format_rfc3339(entry.dead_at),
        "trace_id": entry.trace_id,
    }


async def _run(args: argparse.Namespace, config: Config) -> int:
    from notifactor.storage_setup import check_storage_ready, open_store

    await check_storage_ready(config)
    async with open_redis(_redis_url(config)) as redis, open_store(config) as store:
        dlq = RedisDeadLetterQueue(
            redis,
            keys=RedisKeys(prefix=args.prefix),
            append_slack_ms=append_slack_ms(config.dispatcher.dead_letter_timeout_s),
        )
        service = ReplayService(
            dlq,
            store,
            partitions=config.supervision.partitions,
            retention_days=lambda tenant: config.tenant_policy(tenant).retention_days,
        )
        where = _filter(args)
        if args.dlq_command == "list":
            records, cursor = await service.list(where, limit=args.limit, cursor=args.cursor)
            for record in records:
                print(json.dumps(record_json(record)))
            if cursor is not None:
                print(json.dumps({"next_cursor": cursor}))
            return EXIT_OK
        report = await service.replay(
            where,
            dry_run=args.dry_run,
            rate_per_s=args.rate,
            limit=args.limit,
            actor=args.actor,
        )
        print(json.dumps(report.to_jsonable(), indent=2))
        return EXIT_OK


def run_dlq(args: argparse.Namespace, config: Config) -> int:
    """Run ``dlq list`` / ``dlq replay``; returns the exit code."""
    if not 1 <= args.limit <= (500 if args.dlq_command == "list" else 1_000_000):
        print("notifactor: --limit: out of range", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "cursor", None) and not is_dlq_cursor(args.cursor):
        print("notifactor: --cursor: not a DLQ id", file=sys.stderr)
        return EXIT_USAGE
    return trio.run(_run, args, config)
