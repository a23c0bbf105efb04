"""The gateway's HTTP read loop hands the protocol what hypercorn's own loop hands it.

:class:`CoalescingTCPServer` reads under one read-timeout scope per connection
instead of hypercorn's ``fail_after`` per read. Fed the same reads, both loops
must produce the same protocol events, including the edge where a read
completes with data just as its timeout falls (Trio's socket read finishes
with a step that cannot be interrupted, so this happens).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import TCPServer

from notifactor.config import Config
from notifactor.gateway.coalesced_send import CoalescingTCPServer
from notifactor.gateway.server import hypercorn_config

READ_TIMEOUT_S = 0.1
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


class ScriptedStream:
    """Each read waits as scripted, then returns its bytes; a wait may be uninterruptible."""

    def __init__(self, reads: list[tuple[float, bool, bytes]]) -> None:
        self._reads = list(reads)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        wait_s, shielded, data = self._reads.pop(0)
        with trio.CancelScope(shield=shielded):
            await trio.sleep(wait_s)
        return data


class RecordingProtocol:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def handle(self, event: Event) -> None:
        if isinstance(event, RawData):
            self.events.append(f"data:{len(event.data)}")
        else:
            self.events.append(type(event).__name__)


async def read_loop(server_class: type[TCPServer], reads: list[tuple[float, bool, bytes]]) -> Any:
    """Run ``server_class``'s read loop alone over scripted reads; the protocol's events."""
    server = object.__new__(server_class)  # only what the read loop touches
    server.config = hypercorn_config(Config(jwt_secret="x" * 40))
    server.config.read_timeout = READ_TIMEOUT_S
    server.stream = ScriptedStream(reads)  # type: ignore[assignment]
    protocol = RecordingProtocol()
    server.protocol = protocol  # type: ignore[assignment]
    with trio.fail_after(5):
        await server._read_data()
    return protocol.events


SCRIPTS = {
    "requests then close": [(0, False, REQUEST), (0.02, False, REQUEST), (0, False, b"")],
    "a read that times out": [(0, False, REQUEST), (1.0, False, REQUEST)],
    "data as the timeout falls": [(0.2, True, REQUEST), (0, False, REQUEST), (0, False, b"")],
    "slow pieces, each in time": [
        (0.06, False, b"GET / HT"),
        (0.06, False, b"TP/1.1\r\n"),
        (0.06, False, b"Host: x\r\n\r\n"),
        (0, False, b""),
    ],
}


@pytest.mark.parametrize("script", SCRIPTS)
async def test_the_read_loop_gives_the_protocol_what_hypercorns_gives(script: str) -> None:
    ours = await read_loop(CoalescingTCPServer, SCRIPTS[script])
    theirs = await read_loop(TCPServer, SCRIPTS[script])
    assert ours == theirs
    assert ours[-1] == Closed.__name__


async def test_data_read_as_the_timeout_falls_is_handled_and_reading_goes_on() -> None:
    events = await read_loop(CoalescingTCPServer, SCRIPTS["data as the timeout falls"])
    assert events == [f"data:{len(REQUEST)}", f"data:{len(REQUEST)}", "data:0", "Closed"]
