"""``notifactor listen``: a development WebSocket client that prints every frame.

It mints a token with the configured HS256 secret (as ``notifactor token``
does), connects, optionally resumes from ``--since``, and prints each frame as
one JSON line on stdout until the server closes the socket or Ctrl-C. Pings
from the server are answered by the client library.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from notifactor.config import Config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

#: The longest token lifetime ``token`` and ``listen`` mint: ten years.
MAX_TTL_S = 10 * 365 * 86_400


def ttl_problem(ttl_s: int) -> str | None:
    """Why ``--ttl`` is unusable (a verifier could not read its ``exp``), or None."""
    if not 1 <= ttl_s <= MAX_TTL_S:
        return f"must be 1..{MAX_TTL_S} seconds (ten years)"
    return None


def add_listen_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Register ``listen`` on the CLI's subcommands."""
    listen = subparsers.add_parser(
        "listen",
        parents=[common],
        help="open a WebSocket as a user and print every frame as a JSON line",
    )
    listen.add_argument("--tenant", required=True, help="tenant_id of the session")
    listen.add_argument("--sub", required=True, help="user id of the session")
    listen.add_argument(
        "--url", default=None, help="WebSocket URL (default: ws://<ws_host>:<ws_port>/ws)"
    )
    listen.add_argument("--since", default=None, help="resume after this cursor first")
    listen.add_argument(
        "--ttl", type=int, default=3600, help="token lifetime in seconds (1 to ten years)"
    )


def run_listen(args: argparse.Namespace, config: Config) -> int:
    """Connect, print frames until the socket closes; the exit code."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
    from websockets.sync.client import connect

    from notifactor.auth.secret import resolve_jwt_secret
    from notifactor.auth.tokens import DEFAULT_SCOPES, mint_token
    from notifactor.domain.identifiers import identity_problem

    problem = identity_problem(args.tenant, args.sub)
    if problem is not None:
        which, reason = problem
        print(f"notifactor: --{which}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    ttl_reason = ttl_problem(args.ttl)
    if ttl_reason is not None:
        print(f"notifactor: --ttl: {ttl_reason}", file=sys.stderr)
        return EXIT_USAGE
    secret, _ = resolve_jwt_secret(config, create=False)
    jwt = mint_token(
        secret=secret,
        tenant_id=args.tenant,
        subject=args.sub,
        scopes=DEFAULT_SCOPES,
        ttl_s=args.ttl,
        now=int(time.time()),
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
    )
    url = args.url or f"ws://{config.ws_host}:{config.ws_port}/ws"
    try:
        with connect(
            url, additional_headers={"Authorization": f"Bearer {jwt}"}, open_timeout=10
        ) as socket:
            if args.since:
                socket.send(json.dumps({"type": "resume", "since": args.since}))
            try:
                for message in socket:
                    text = message if isinstance(message, str) else message.decode("utf-8")
                    print(text, flush=True)
            except ConnectionClosed:
                pass
            code = socket.close_code
    except InvalidStatus as refused:
        print(f"notifactor: refused: HTTP {refused.response.status_code}", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, InvalidURI, TimeoutError) as error:
        print(f"notifactor: cannot connect to {url}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps({"type": "closed", "code": code}), file=sys.stderr)
    return EXIT_OK if code in (1000, 1001, None) else EXIT_FAILURE
