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

    Two keys naming the same port on the same host are refused too: each
    probe binds and closes, so both would pass, and the second listener
    would then fail in a loop.
    """
    addresses = list(addresses)
    for index, address in enumerate(addresses):
        for earlier in addresses[:index]:
            if earlier.port == address.port and earlier.host == address.host:
                raise ConfigError(
                    address.key,
                    f"{address.host}:{address.port} is also {earlier.key}; give each its own port",
                )
        try:
            infos = socket.getaddrinfo(
                address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as error:
            raise ConfigError(
                address.host_key, f"cannot resolve {address.host!r}: {error.strerror}"
            ) from None
        family, kind, proto, _, sockaddr = infos[0]
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
