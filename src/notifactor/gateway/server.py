"""Serving the ASGI app with hypercorn on Trio, as a supervised child.

Why not ``hypercorn.trio.serve`` as is: it runs every connection in one
nursery, so one connection whose handling raises (hypercorn 0.18 on Trio
raises on, e.g., a WebSocket upgrade followed by extra bytes — upstream issue
225) takes the whole server and every other in-flight request down. Here each
connection runs hypercorn's own per-connection ``TCPServer`` inside a guard
that logs and drops *that* connection only. The listening socket, the accept
loop and the graceful drain are ours:

* :func:`run_http_server` binds, calls ``task_status.started(port)`` once
  listening, and serves until cancelled.
* Cancellation is a graceful shutdown: stop accepting, tell hypercorn to close
  keep-alive connections after their current response, and give in-flight
  requests up to ``config.shutdown_grace_s`` before cancelling them.

The hypercorn pieces used (``TCPServer``, ``WorkerContext``) are the ones its
own Trio worker composes; the dependency is pinned to 0.18.x. They are
adjusted for speed, with the same behaviour: each connection's idle task is
replaced by :class:`IdleTimeout` (one task per connection instead of one per
request), and :class:`CoalescingTCPServer` writes an HTTP/1.x response's head
and first body chunk in one socket write instead of three (the head of a
response whose body comes later waits for it) and reads under one read-timeout
scope per connection instead of one per read.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState

from notifactor.actors.stop import hurry_signal
from notifactor.config import Config
from notifactor.gateway.coalesced_send import CoalescingTCPServer
from notifactor.gateway.idle_timeout import IdleTimeout

log = logging.getLogger("notifactor.gateway.server")

MAX_HEADER_BYTES = 16 * 1024
KEEP_ALIVE_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30


def hypercorn_config(config: Config) -> HypercornConfig:
    """hypercorn settings for the REST listener (binding is done by us)."""
    hc = HypercornConfig()
    hc.keep_alive_timeout = KEEP_ALIVE_TIMEOUT_S
    hc.read_timeout = READ_TIMEOUT_S
    hc.h11_max_incomplete_size = MAX_HEADER_BYTES
    hc.graceful_timeout = config.shutdown_grace_s
    hc.include_server_header = False
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc


async def run_http_server(
    app: Any,
    config: Config,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``config.http_host:http_port`` until cancelled, then drain.

    Args:
        app: an ASGI application (normally :class:`notifactor.gateway.app.GatewayApp`).
        config: ``http_host``, ``http_port`` (0 picks a free port) and
            ``shutdown_grace_s``.
        task_status: receives the bound port once the socket listens.
    """
    listeners = await trio.open_tcp_listeners(config.http_port, host=config.http_host)
    port = int(listeners[0].socket.getsockname()[1])
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            _serve, app, listeners, hypercorn_config(config), stop, config.shutdown_grace_s
        )
        log.info("http listener ready", extra={"event": "http_listening", "reason": f"port {port}"})
        task_status.started(port)
        try:
            await trio.sleep_forever()
        finally:
            stop.set()


async def _serve(
    app: Any,
    listeners: list[trio.SocketListener],
    hc: HypercornConfig,
    stop: trio.Event,
    grace_s: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    context = WorkerContext(None)

    async def handle(stream: trio.SocketStream) -> None:
        server = CoalescingTCPServer(app, hc, context, ConnectionState({}), stream)
        try:
            async with trio.open_nursery() as idle_watch:
                # A moved deadline instead of a task restart per request (+~15 % POST/s).
                server.idle_task = IdleTimeout(  # type: ignore[assignment]
                    server, context.terminated, hc.keep_alive_timeout, idle_watch
                )
                await server.run()
                idle_watch.cancel_scope.cancel()  # the connection is over
        except* Exception:
            log.warning(
                "HTTP connection failed inside the server; dropped it",
                exc_info=True,
                extra={"event": "http_connection_error"},
            )
            with trio.CancelScope(shield=True):
                await stream.aclose()

    # Shielded: the caller's cancellation reaches us only through ``stop``, so
    # in-flight requests get the grace period instead of dying mid-response.
    with trio.CancelScope(shield=True):
        async with trio.open_nursery() as connections:
            accepting = trio.CancelScope()

            async def accept() -> None:
                with accepting:
                    await trio.serve_listeners(handle, listeners, handler_nursery=connections)

            connections.start_soon(accept)
            task_status.started()
            await stop.wait()
            accepting.cancel()
            for listener in listeners:
                await listener.aclose()
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + grace_s
            hurry = hurry_signal()
            if hurry is not None:  # a hurried stop does not wait for the drain
                hurry.register(connections.cancel_scope)
