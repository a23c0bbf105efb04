"""``notifactor tree``: fetch ``GET /v1/admin/tree`` from a running instance and render it.

Uses only the standard library (urllib): the CLI must work where only the
package's runtime dependencies are installed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from notifactor.actors.crash import CrashReason
from notifactor.actors.mailbox import MailboxStatistics
from notifactor.config import Config
from notifactor.supervisors.statistics import NodeStatistics

TREE_PATH = "/v1/admin/tree"


class TreeFetchError(Exception):
    """The instance could not be reached or refused the request (one line for the operator)."""


def default_url(config: Config) -> str:
    """The REST listener of the configured instance, as reachable from this host."""
    return _local_url(config.http_host, config.http_port)


def metrics_url(config: Config) -> str:
    """The metrics listener of the configured instance (dispatcher-only processes)."""
    return _local_url(config.observability.metrics_host, config.observability.metrics_port)


def _local_url(host: str, port: int) -> str:
    if host in {"0.0.0.0", "", "::"}:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def base_url_problem(base_url: str) -> str | None:
    """Why ``base_url`` cannot name an instance (``http(s)://host[:port]``), or None."""
    try:
        parts = urlsplit(base_url)
        _ = parts.port
    except ValueError as error:
        return f"{error}: {base_url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected http://host:port or https://host:port, got {base_url!r}"
    return None


def fetch_tree(base_url: str, token: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
    """The tree document of the instance at ``base_url``.

    Raises:
        TreeFetchError: connection failure, a non-200 answer, or not a tree.
    """
    url = base_url.rstrip("/") + TREE_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise TreeFetchError(f"{url} answered {error.code}: {_problem_detail(error)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TreeFetchError(f"cannot reach {url}: {reason}") from None
    except ValueError:
        raise TreeFetchError(f"{url} did not answer JSON") from None
    if not isinstance(payload, dict) or "id" not in payload:
        raise TreeFetchError(f"{url} did not answer a supervision tree")
    return payload


def _problem_detail(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        return str(body.get("detail") or body.get("title") or error.reason)
    except (ValueError, OSError, AttributeError):
        return str(error.reason)


def from_jsonable(data: dict[str, Any]) -> NodeStatistics:
    """Rebuild a snapshot from ``to_jsonable`` output (for ``render_tree``)."""
    crash = data.get("last_crash")
    mailbox = data.get("mailbox")
    return NodeStatistics(
        id=str(data["id"]),
        kind=data["kind"],
        state=data["state"],
        strategy=data.get("strategy"),
        restarts=int(data.get("restarts") or 0),
        max_children=data.get("max_children"),
        mailbox=None if mailbox is None else MailboxStatistics(**mailbox),
        last_crash=None
        if crash is None
        else CrashReason(
            child_id=str(crash.get("child_id", "")),
            exc_type=str(crash.get("type") or ""),
            message=str(crash.get("message") or ""),
            traceback=str(crash.get("traceback") or ""),
            at=0.0,
            wall_time=float(crash.get("wall_time") or 0.0),
        ),
        children=tuple(from_jsonable(child) for child in data.get("children", ())),
    )
