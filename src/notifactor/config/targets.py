"""Parsing of the URLs that name where state lives (Redis and storage)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import attrs

DEFAULT_CASSANDRA_PORT = 9042


@attrs.frozen(kw_only=True)
class SqliteTarget:
    """An embedded SQLite database file."""

    path: Path


@attrs.frozen(kw_only=True)
class CassandraTarget:
    """A Cassandra cluster: contact points and the keyspace to use."""

    contact_points: tuple[tuple[str, int], ...]
    keyspace: str


StorageTarget = SqliteTarget | CassandraTarget

REDIS_SCHEMES = ("redis", "rediss", "unix")


def parse_storage_url(url: str) -> StorageTarget:
    """Parse ``sqlite:///path`` or ``cassandra://h1:p,h2:p/keyspace``.

    Raises:
        ValueError: with a reason fit for an operator, when the URL is malformed.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"expected sqlite:///path or cassandra://host:port/keyspace, got {url!r}")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"sqlite URL needs an absolute file path (sqlite:///path), got {url!r}"
            )
        return SqliteTarget(path=Path(rest))
    if scheme == "cassandra":
        hosts_part, slash, keyspace = rest.partition("/")
        if not slash or not keyspace:
            raise ValueError(
                f"cassandra URL needs a keyspace (cassandra://host:port/keyspace), got {url!r}"
            )
        if (
            not keyspace.replace("_", "a").isalnum()
            or not keyspace[0].isalpha()
            or len(keyspace) > 48
        ):
            raise ValueError(
                f"keyspace must be 1-48 letters, digits or _ starting with a letter, got {keyspace!r}"
            )
        points = tuple(_parse_host_port(part, url) for part in hosts_part.split(","))
        return CassandraTarget(contact_points=points, keyspace=keyspace)
    raise ValueError(f"unsupported scheme {scheme!r}: use sqlite:// or cassandra://")


def _parse_host_port(part: str, url: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[ipv6]`` or ``[ipv6]:port`` (port 9042 when absent)."""
    part = part.strip()
    if part.startswith("["):
        address, bracket, after = part[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"bad IPv6 host {part!r} in {url!r}: use [address]:port")
        host, port_text = address, after[1:] if after else str(DEFAULT_CASSANDRA_PORT)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bad IPv6 address {host!r} in {url!r}") from None
    elif part.count(":") > 1:
        raise ValueError(f"IPv6 host {part!r} in {url!r} needs brackets: [address]:port")
    else:
        host, colon, port_text = part.rpartition(":")
        if not colon:
            host, port_text = part, str(DEFAULT_CASSANDRA_PORT)
    if not host:
        raise ValueError(f"empty host in {url!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} in {url!r}")
    return host, int(port_text)


def check_redis_url(url: str) -> None:
    """Reject a Redis URL whose scheme or shape the client cannot use.

    Raises:
        ValueError: naming what is wrong.
    """
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"scheme must be one of redis://, rediss://, unix://, got {url!r}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(
                f"unix URL needs a socket path (unix:///path/to/redis.sock), got {url!r}"
            )
    elif not parts.hostname:
        raise ValueError(f"URL needs a host, got {url!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    _check_redis_db(parts.scheme, parts.path, parts.query, url)


def _check_redis_db(scheme: str, path: str, query: str, url: str) -> None:
    """The database number, from the path (``/N``, not for unix://) or ``?db=N``."""
    candidates = parse_qs(query, keep_blank_values=True).get("db", [])
    if scheme != "unix" and path not in ("", "/"):
        candidates.append(path[1:])
    for text in candidates:
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"db must be a database number (/0, /1, ... or ?db=N), got {url!r}")
