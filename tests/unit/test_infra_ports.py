"""Port picking for the local servers."""

from __future__ import annotations

import socket

from infra.local.processes import LOCALHOST, pick_free_ports, port_is_free


def test_picked_ports_are_distinct_and_free() -> None:
    ports = pick_free_ports(5)
    assert len(set(ports)) == 5
    assert all(port_is_free(port) for port in ports)


def test_listening_port_is_not_free() -> None:
    with socket.socket() as listener:
        listener.bind((LOCALHOST, 0))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])
