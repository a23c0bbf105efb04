"""The WebSocket listener: upgrade requests on ``/ws``, one session actor per socket.

Everything a client can get wrong is answered before the upgrade, as plain
HTTP with an ``application/problem+json`` body:

* a path other than ``/ws`` → 404;
* a missing, malformed, expired or badly signed token (``?token=`` or
  ``Authorization: Bearer``) → 401 with ``WWW-Authenticate: Bearer
  error="invalid_token"``;
* the tenant already holds ``max_ws_connections`` sessions on this process → 429
  with ``Retry-After``; the session pool is full → 503.

Each TCP connection runs in a guard: garbage bytes, a broken handshake or a
peer that vanishes mid-upgrade end that connection only, never the listener.
The connection's task ends once its session has started: the session owns
the stream from then on (:mod:`notifactor.edge.ws_connection`), so an open
session costs its two tasks and nothing here.
A graceful stop closes the listening socket, then stops every session (each
closes with 1001) within the pool's budget.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import msgspec
import trio

from notifactor.actors import ActorRef
from notifactor.actors.session import CLOSE_INTERNAL, CLOSE_TRY_AGAIN, SessionActor
from notifactor.actors.stop import optional_stop_signal
from notifactor.auth.verify import InvalidTokenError, Principal, TokenVerifier
from notifactor.config import Config
from notifactor.edge import metrics
from notifactor.edge.context import EdgeContext
from notifactor.edge.session_slot import SessionSlot
from notifactor.edge.ws_connection import (
    Upgrade,
    UpgradeError,
    accept,
    new_handshake,
    read_upgrade,
    refuse,
)
from notifactor.supervisors import (
    ChildSpec,
    ChildStartFailed,
    DynamicSupervisor,
    PoolFull,
    SupervisorNotRunning,
)

log = logging.getLogger("notifactor.edge.listener")

WS_PATH = "/ws"
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_RETRY_S = 0.1
RETRY_AFTER_S = 5


class WsListener:
    """Accepts WebSocket upgrades and starts session actors in ``pool``.

    Args:
        config: ``ws_host``, ``ws_port`` (0 picks a free port),
            ``limits.ws_max_message_bytes``, tenant policies. (Sessions get a
            one-slot mailbox: it only carries the stop request; live frames go
            through the registry into the session's outbox.)
        verifier: checks the bearer token of each upgrade request.
        context: what sessions share.
        pool: the ``sessions`` dynamic supervisor (must be running).
        on_listening: told the bound port once the socket listens.
    """

    def __init__(
        self,
        config: Config,
        verifier: TokenVerifier,
        context: EdgeContext,
        pool: DynamicSupervisor,
        *,
        on_listening: Callable[[int], None] | None = None,
    ) -> None:
        self._config = config
        self._verifier = verifier
        self._ctx = context
        self._pool = pool
        self._on_listening = on_listening
        self.port: int | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until stopped (graceful: sessions close with 1001) or cancelled."""
        listeners = await trio.open_tcp_listeners(self._config.ws_port, host=self._config.ws_host)
        self.port = int(listeners[0].socket.getsockname()[1])
        stop = optional_stop_signal()
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept_loop, listener, connections)
                log.info("websocket listener ready on port %d", self.port)
                if self._on_listening is not None:
                    self._on_listening(self.port)
                task_status.started()
                if stop is None:
                    await trio.sleep_forever()
                await stop.wait()
                accepting.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
                await self._stop_sessions()
            connections.cancel_scope.deadline = (
                trio.current_time() + self._ctx.settings.close_timeout_s
            )

    async def _accept_loop(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        """Accept connections; unlike ``trio.serve_listeners``, the connection's task
        does not close the stream when it returns (the session owns it then)."""
        while True:
            try:
                stream = await listener.accept()
            except OSError as error:
                if error.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                log.error("accept failed (%s); retrying shortly", os.strerror(error.errno))
                await trio.sleep(_ACCEPT_RETRY_S)
            else:
                connections.start_soon(self._guarded, stream)

    async def _stop_sessions(self) -> None:
        async with trio.open_nursery() as nursery:
            for child_id in self._pool.child_ids():
                nursery.start_soon(self._pool.stop_child, child_id)

    async def _guarded(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve_connection(stream)
        except* Exception:
            log.debug("websocket connection failed; dropped it", exc_info=True)
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        handshake = new_handshake()
        owned = False
        try:
            with trio.move_on_after(self._ctx.settings.connect_timeout_s):
                try:
                    upgrade = await read_upgrade(stream, handshake)
                except UpgradeError as error:
                    log.debug("not a websocket upgrade: %s", error)
                    return
            if upgrade is None:
                return
            owned = await self._handle(stream, upgrade)
        finally:
            if not owned:
                with trio.CancelScope(shield=True):
                    await stream.aclose()

    async def _handle(self, stream: trio.SocketStream, upgrade: Upgrade) -> bool:
        """Refuse or start a session; ``True`` once a session owns ``stream``."""
        target = urlsplit(upgrade.path)
        if target.path != WS_PATH:
            await _refuse(
                stream, upgrade, 404, "Not Found", f"no WebSocket endpoint at {target.path!r}"
            )
            return False
        try:
            principal = self._verifier.verify(_token_of(upgrade.headers, target.query))
        except InvalidTokenError as error:
            await _refuse(
                stream,
                upgrade,
                401,
                "Unauthorized",
                str(error),
                [(b"WWW-Authenticate", b'Bearer error="invalid_token"')],
            )
            return False
        limit = self._config.tenant_policy(principal.tenant_id).max_ws_connections
        if not self._ctx.registry.reserve(principal.tenant_id, limit):
            await _refuse(
                stream,
                upgrade,
                429,
                "Too Many Requests",
                f"the tenant already has {limit} WebSocket sessions",
                [(b"Retry-After", str(RETRY_AFTER_S).encode())],
            )
            return False
        slot = SessionSlot(self._ctx.registry, principal.tenant_id)
        try:
            if len(self._pool) >= self._pool.max_children:
                await _refuse(
                    stream,
                    upgrade,
                    503,
                    "Service Unavailable",
                    "this gateway holds as many sessions as it may",
                    [(b"Retry-After", str(RETRY_AFTER_S).encode())],
                )
                slot.release()
                return False
            started = await self._run_session(stream, upgrade, principal, slot)
        except BaseException:
            slot.release()
            raise
        if not started:
            slot.release()
        return started

    async def _run_session(
        self, stream: trio.SocketStream, upgrade: Upgrade, principal: Principal, slot: SessionSlot
    ) -> bool:
        """Accept and start the session; ``False`` if it could not start (socket closed)."""
        socket = await accept(
            stream, upgrade, max_message_bytes=self._config.limits.ws_max_message_bytes
        )
        session_id = secrets.token_urlsafe(12)
        ref = slot.ref = ActorRef(f"session-{session_id}", mailbox_size=1)
        slot.session = SessionActor(
            session_id=session_id,
            tenant_id=principal.tenant_id,
            user_id=principal.subject,
            socket=socket,
            ref=ref,
            context=self._ctx,
        )
        spec = ChildSpec(
            id=ref.name,
            start=slot.run,
            restart="temporary",
            kind="actor",
            introspect=slot.statistics,
            on_terminated=slot.terminated,
        )
        try:
            await self._pool.start_child(spec)
        except PoolFull:
            await socket.close(CLOSE_TRY_AGAIN, "server at capacity")
            return False
        except (ChildStartFailed, SupervisorNotRunning) as error:
            log.warning("session %s could not start: %s", session_id, error)
            await socket.close(CLOSE_INTERNAL, "session could not start")
            return False
        return True


def _token_of(headers: list[tuple[bytes, bytes]], query: str) -> str:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise InvalidTokenError("authorization scheme must be Bearer")
    tokens = parse_qs(query).get("token")
    if not tokens or not tokens[0]:
        raise InvalidTokenError("missing bearer token")
    return tokens[0]


async def _refuse(  # noqa: PLR0917 - one HTTP answer, spelled out
    stream: trio.SocketStream,
    upgrade: Upgrade,
    status: int,
    title: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    metrics.WEBSOCKET_REFUSED.labels(status=str(status)).inc()
    body = msgspec.json.encode(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    )
    await refuse(
        stream,
        upgrade.handshake,
        status,
        [(b"Content-Type", b"application/problem+json"), *(headers or [])],
        body,
    )
