"""The ``notifactor`` console script.

Every failure an operator can cause (bad configuration, a server that cannot
be reached) ends as one line on stderr and a non-zero exit code, never a
traceback: 2 for configuration and usage errors, 130 for Ctrl-C of a one-shot
command, 1 for anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from notifactor import __version__
from notifactor.config import Config, ConfigError, load_config
from notifactor.dispatcher.cli_dlq import add_dlq_commands, run_dlq
from notifactor.edge.listen_cli import add_listen_command, run_listen, ttl_problem

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("notifactor.cli")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per role or tool (SPEC §1)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML configuration file (default: $NOTIFACTOR_CONFIG, else built-in defaults)",
    )
    parser = argparse.ArgumentParser(
        prog="notifactor", description="Multi-tenant real-time notification platform."
    )
    parser.add_argument("--version", action="version", version=f"notifactor {__version__}")
    # Also accepted before the subcommand; the subcommand's own --config wins
    # (a separate dest: a subparser's default would overwrite a shared one).
    parser.add_argument(
        "--config",
        dest="global_config",
        metavar="CONFIG",
        type=Path,
        default=None,
        help="TOML configuration file (also accepted after the command, where it wins)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "serve",
        parents=[common],
        help="run every role in one process (embedded SQLite and Redis by default)",
    )
    commands.add_parser(
        "gateway",
        parents=[common],
        help="run the HTTP API and WebSocket edge only (needs redis_url; run many)",
    )
    commands.add_parser(
        "dispatcher",
        parents=[common],
        help="run stream consumers, retries and storage writers only (needs redis_url; run many)",
    )
    add_dlq_commands(commands, common)
    add_listen_command(commands, common)
    commands.add_parser(
        "migrate", parents=[common], help="create or upgrade the Cassandra keyspace and tables"
    )
    token = commands.add_parser(
        "token", parents=[common], help="mint a development JWT signed with the HS256 secret"
    )
    token.add_argument("--tenant", required=True, help="tenant_id claim")
    token.add_argument("--sub", required=True, help="sub claim: the user id")
    token.add_argument(
        "--scope",
        default="notifications:write notifications:read deliveries:read",
        help="space-separated scopes (default: %(default)s)",
    )
    token.add_argument(
        "--ttl",
        type=int,
        default=3600,
        help="seconds until expiry, at most ten years (default: 3600)",
    )
    tree = commands.add_parser(
        "tree", parents=[common], help="print the live supervision tree of a running instance"
    )
    tree.add_argument(
        "--url",
        default=None,
        help="REST base URL of the instance (default: from http_host/http_port of the config)",
    )
    tree.add_argument(
        "--metrics",
        action="store_true",
        help="ask the metrics listener (metrics_host/metrics_port) instead: "
        "the way to a `notifactor dispatcher` process, from the same host",
    )
    tree.add_argument(
        "--token",
        default=None,
        help="bearer token with scope admin (not needed from the same host)",
    )
    tree.add_argument("--json", action="store_true", help="print the raw JSON document")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace, Config], int]] = {
        "serve": _serve,
        "gateway": _gateway,
        "dispatcher": _dispatcher,
        "dlq": run_dlq,
        "listen": run_listen,
        "migrate": _migrate,
        "token": _token,
        "tree": _tree,
    }
    try:
        config = load_config(
            args.config or getattr(args, "group_config", None) or args.global_config
        )
        return handlers[args.command](args, config)
    except ConfigError as exc:
        print(f"notifactor: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return _interrupted(args)
    except BaseExceptionGroup as group:
        if not _only_interrupts(group):
            raise
        return _interrupted(args)
    except Exception as exc:  # the last line of defence: no traceback reaches a user
        log.debug("command failed", exc_info=True)
        print(f"notifactor: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _only_interrupts(group: BaseExceptionGroup[BaseException]) -> bool:
    """Whether every leaf of ``group`` is a KeyboardInterrupt (Ctrl-C inside a Trio run)."""
    rest = group.split(KeyboardInterrupt)[1]
    return rest is None


def _interrupted(args: argparse.Namespace) -> int:
    """Ctrl-C: one line and exit 130; ``listen`` ends this way normally (exit 0)."""
    if args.command == "listen":
        return EXIT_OK
    note = ""
    if args.command == "dlq" and args.dlq_command == "replay" and not args.dry_run:
        note = "; the dead letters re-enqueued so far are audited (dlq.replay)"
    print(f"notifactor: interrupted{note}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _token(args: argparse.Namespace, config: Config) -> int:
    from notifactor.auth.secret import resolve_jwt_secret
    from notifactor.auth.tokens import mint_token
    from notifactor.domain.identifiers import identity_problem

    if config.jwt_algorithm != "HS256":
        raise ConfigError("jwt_algorithm", "`notifactor token` signs with HS256 only")
    problem = identity_problem(args.tenant, args.sub)
    if problem is not None:
        which, reason = problem
        print(f"notifactor: --{which}: {reason}", file=sys.stderr)
        return EXIT_CONFIG
    ttl_reason = ttl_problem(args.ttl)
    if ttl_reason is not None:
        print(f"notifactor: --ttl: {ttl_reason}", file=sys.stderr)
        return EXIT_CONFIG
    secret, _ = resolve_jwt_secret(config, create=False)
    print(
        mint_token(
            secret=secret,
            tenant_id=args.tenant,
            subject=args.sub,
            scopes=tuple(args.scope.split()),
            ttl_s=args.ttl,
            now=int(time.time()),
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
        )
    )
    return EXIT_OK


def _tree(args: argparse.Namespace, config: Config) -> int:
    import json

    from notifactor.observability.tree_client import (
        TreeFetchError,
        base_url_problem,
        default_url,
        fetch_tree,
        from_jsonable,
        metrics_url,
    )
    from notifactor.supervisors.statistics import render_tree

    if args.url is not None:
        problem = base_url_problem(args.url)
        if problem is not None:
            print(f"notifactor: --url: {problem}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        url = args.url or (metrics_url(config) if args.metrics else default_url(config))
        document = fetch_tree(url, args.token)
    except TreeFetchError as error:
        print(f"notifactor: tree: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(render_tree(from_jsonable(document)))
    return EXIT_OK


def _serve(args: argparse.Namespace, config: Config) -> int:
    from notifactor.bootstrap import run_serve

    return run_serve(config)


def _gateway(args: argparse.Namespace, config: Config) -> int:
    from notifactor.bootstrap import run_gateway

    return run_gateway(config)


def _dispatcher(args: argparse.Namespace, config: Config) -> int:
    from notifactor.bootstrap import run_dispatcher

    return run_dispatcher(config)


def _migrate(args: argparse.Namespace, config: Config) -> int:
    from notifactor.bootstrap import run_migrate

    return run_migrate(config)


if __name__ == "__main__":
    sys.exit(main())
