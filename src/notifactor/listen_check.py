"""Whether this process can listen where its configuration says, checked before it starts.

A port that another process holds would otherwise surface as a listener
crashing in a loop until its supervisor gives up, with tracebacks and exit
status 1. Checked first, it is a configuration error: one line naming the
key, exit status 2.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from typing import Any

import attrs

from notifactor.config import Config
from notifactor.errors import ConfigError


@attrs.frozen
class ListenAddress:
    """One address the process will listen on, and the configuration key that sets it."""

    key: str
    host: str
    port: int
    #: The key that sets ``host`` (named when the host does not resolve).
    host_key: str


def listen_addresses(config: Config, roles: frozenset[str]) -> list[ListenAddress]:
    """The TCP addresses the given roles listen on (port 0: any free port, not checked)."""
    if "gateway" in roles:
        wanted = [
            ListenAddress("http_port", config.http_host, config.http_port, "http_host"),
            ListenAddress("ws_port", config.ws_host, config.ws_port, "ws_host"),
        ]
    else:
        observability = config.observability
        wanted = [
            ListenAddress(
                "observability.metrics_port",
                observability.metrics_host,
                observability.metrics_port,
                "observability.metrics_host",
            )
        ]
    return [address for address in wanted if address.port != 0]


def check_can_listen(addresses: Iterable[ListenAddress]) -> None:
    """Bind each address once, as the listeners will; raise :class:`ConfigError` if one fails.

    Two keys whose addresses overlap on one port are refused too (the same
    address however it is written, or a wildcard host and any other): each
    probe binds and closes, so both would pass, and the second listener
    would then fail in a loop.
    """
    resolved: list[tuple[ListenAddress, tuple[int, int, int, Any]]] = []
    for address in addresses:
        family, kind, proto, sockaddr = _resolve(address)
        for earlier, (_, _, _, earlier_sockaddr) in resolved:
            if _overlap(earlier_sockaddr, sockaddr):
                raise ConfigError(
                    address.key,
                    f"{address.host}:{address.port} is also {earlier.key}; give each its own port",
                )
        resolved.append((address, (family, kind, proto, sockaddr)))
    for address, (family, kind, proto, sockaddr) in resolved:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    reason = f"{address.host}:{address.port} is already in use by another process"
                else:
                    reason = f"cannot listen on {address.host}:{address.port}: {error.strerror}"
                raise ConfigError(address.key, reason) from None


def _resolve(address: ListenAddress) -> tuple[int, int, int, Any]:
    """Family, type, protocol and socket address the listener of ``address`` binds."""
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise ConfigError(
            address.host_key, f"cannot resolve {address.host!r}: {error.strerror}"
        ) from None
    family, kind, proto, _, sockaddr = infos[0]
    return family, kind, proto, sockaddr


_WILDCARDS = frozenset({"0.0.0.0", "::"})


def _overlap(first: Any, second: Any) -> bool:
    """Whether two bound socket addresses would take the same port (a wildcard takes all)."""
    if first[1] != second[1]:
        return False
    return bool(first[0] == second[0] or first[0] in _WILDCARDS or second[0] in _WILDCARDS)
