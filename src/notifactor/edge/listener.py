"""The WebSocket listener: upgrade requests on ``/ws``, one session actor per socket.

Everything a client can get wrong is answered before the upgrade, as plain
HTTP with an ``application/problem+json`` body:

* a path other than ``/ws`` → 404;
* a missing, malformed, expired or badly signed token (``?token=`` or
  ``Authorization: Bearer``) → 401 with ``WWW-Authenticate: Bearer
  error="invalid_token"``;
* the tenant already holds ``max_ws_connections`` sessions across the cluster
  → 429 with ``Retry-After`` (see :mod:`notifactor.edge.admission`); Redis
  cannot answer the admission, or the session pool is full → 503 with
  ``Retry-After``.

After the ``101`` the session registers its presence (Redis); when that does
not happen within ``admission_timeout_s`` (or Redis cannot be reached) the
session does not start and the socket is closed with 1013 (try again
later); any other failure to start closes it with 1011.

Sockets are served with trio-websocket (through
:func:`~notifactor.edge.trio_socket.open_server_connection`). Each TCP
connection's upgrade runs in a guard, and so does trio-websocket's reader
task (:class:`_GuardedReader`): garbage bytes, a broken handshake or a peer
that vanishes mid-upgrade end that connection only, never the listener (which
is why this is not ``serve_websocket``: its handler and reader tasks run
unguarded in the server's nursery). The reader runs in the listener's
connections nursery, not in a nursery of the upgrading task, so that task
ends once the session runs: an idle session costs trio-websocket's reader and
the session's own task, and no task or nursery of the listener's (tens
of thousands of idle sessions per gateway). For the same reason connections
are accepted here rather than with ``trio.serve_listeners``, which closes a
connection when its handler returns. A graceful stop closes the listening
socket, then stops every session (each closes with 1001) within the pool's
budget.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import parse_qs, urlsplit

import msgspec
import trio
from trio_websocket import WebSocketRequest

from notifactor.actors.session import (
    CLOSE_INTERNAL,
    CLOSE_TRY_AGAIN,
    PresenceUnavailable,
    SessionActor,
)
from notifactor.actors.stop import StopSignal, optional_stop_signal
from notifactor.auth.verify import InvalidTokenError, Principal, TokenVerifier
from notifactor.config import Config
from notifactor.edge import metrics
from notifactor.edge.admission import ConnectionAdmission, Verdict
from notifactor.edge.context import EdgeContext
from notifactor.edge.session_slot import SessionSlot
from notifactor.edge.trio_socket import TrioWebSocket, Upgrade, open_server_connection
from notifactor.supervisors import (
    ChildSpec,
    ChildStartFailed,
    DynamicSupervisor,
    PoolFull,
    SupervisorNotRunning,
)

log = logging.getLogger("notifactor.edge.listener")

WS_PATH = "/ws"
RETRY_AFTER_S = 5

ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""``accept`` errors that mean the system is overloaded: retried after a pause."""
ACCEPT_RETRY_S = 0.1


class WsListener:
    """Accepts WebSocket upgrades and starts session actors in ``pool``.

    Args:
        config: ``ws_host``, ``ws_port`` (0 picks a free port),
            ``limits.ws_max_message_bytes``, tenant policies. (Sessions have
            no mailbox: the stop request comes through the pool's stop
            signal, and live frames through the registry into the session's
            outbox.)
        verifier: checks the bearer token of each upgrade request.
        context: what sessions share.
        pool: the ``sessions`` dynamic supervisor (must be running).
        admission: the tenant connection limit, cluster-wide.
        on_listening: told the bound port once the socket listens.
    """

    def __init__(
        self,
        config: Config,
        verifier: TokenVerifier,
        context: EdgeContext,
        pool: DynamicSupervisor,
        *,
        admission: ConnectionAdmission,
        on_listening: Callable[[int], None] | None = None,
    ) -> None:
        self._config = config
        self._verifier = verifier
        self._ctx = context
        self._pool = pool
        self._admission = admission
        self._on_listening = on_listening
        self._stop: StopSignal | None = None
        self._starting = 0  # upgrades past the pool check and not in the pool yet
        self.port: int | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until stopped (graceful: sessions close with 1001) or cancelled."""
        listeners = await trio.open_tcp_listeners(self._config.ws_port, host=self._config.ws_host)
        self.port = int(listeners[0].socket.getsockname()[1])
        stop = self._stop = optional_stop_signal()
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept, listener, connections)
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

    async def _stop_sessions(self) -> None:
        async with trio.open_nursery() as nursery:
            for child_id in self._pool.child_ids():
                nursery.start_soon(self._pool.stop_child, child_id)

    async def _accept(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        """Accept connections until cancelled; each one is upgraded in ``connections``.

        As ``trio.serve_listeners`` does, accept errors that mean the system is
        overloaded are retried after a pause; others end the listener.
        """
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as error:
                    if error.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    log.error(
                        "accept returned %s (%s); retrying in %s seconds",
                        errno.errorcode[error.errno],
                        os.strerror(error.errno),
                        ACCEPT_RETRY_S,
                        exc_info=True,
                    )
                    await trio.sleep(ACCEPT_RETRY_S)
                else:
                    connections.start_soon(self._guarded, stream, connections)

    async def _guarded(self, stream: trio.SocketStream, connections: trio.Nursery) -> None:
        try:
            await self._serve_connection(stream, connections)
        except* Exception:
            await _drop(stream)

    async def _serve_connection(self, stream: trio.SocketStream, connections: trio.Nursery) -> None:
        """Upgrade with trio-websocket, then refuse the request or start its session.

        Returns once the session runs: from then on the session owns the
        stream (it closes it when it ends), and trio-websocket's reader task,
        which the session's socket needs until the close handshake is over,
        runs in ``connections``. Otherwise the stream is closed here, which
        also ends the reader task.
        """
        max_bytes = self._config.limits.ws_max_message_bytes
        running = False
        try:
            with trio.move_on_after(self._ctx.settings.connect_timeout_s) as upgrade:
                reader = _GuardedReader(connections, stream, upgrade)
                try:
                    # It only calls ``start_soon`` on its nursery.
                    opened = await open_server_connection(
                        cast("trio.Nursery", reader), stream, max_message_size=max_bytes
                    )
                finally:
                    reader.upgrade = None
            if upgrade.cancelled_caught:
                return
            running = await self._handle(opened)
        finally:
            if not running:
                with trio.CancelScope(shield=True):
                    await stream.aclose()

    async def _handle(self, upgrade: Upgrade) -> bool:
        """Refuse the request, or start a session on it; ``True`` if a session runs."""
        request = upgrade.request
        target = urlsplit(request.path)
        if target.path != WS_PATH:
            await _refuse(request, 404, "Not Found", f"no WebSocket endpoint at {target.path!r}")
            return False
        if self._stop is not None and self._stop.requested:
            # Stopping: the sessions are being closed with 1001; a session
            # started now could miss that and be cut off at the deadline.
            await _refuse_for_now(request, 503, "this gateway is shutting down")
            return False
        try:
            principal = self._verifier.verify(_token_of(request.headers, target.query))
        except InvalidTokenError as error:
            await _refuse(
                request,
                401,
                "Unauthorized",
                str(error),
                [(b"WWW-Authenticate", b'Bearer error="invalid_token"')],
            )
            return False
        limit = self._config.tenant_policy(principal.tenant_id).max_ws_connections
        session_id = secrets.token_urlsafe(12)
        admission = await self._admission.admit(principal.tenant_id, session_id, limit)
        if admission.verdict is Verdict.FULL:
            detail = f"the tenant already has {admission.count} of {limit} WebSocket sessions"
            await _refuse_for_now(request, 429, detail)
            return False
        if admission.verdict is Verdict.UNAVAILABLE:
            await _refuse_for_now(
                request, 503, "the tenant's connection count cannot be checked right now"
            )
            return False
        slot = SessionSlot(self._admission, principal.tenant_id, session_id)
        try:
            if self._stop is not None and self._stop.requested:  # stopped while admitting
                await _refuse_for_now(request, 503, "this gateway is shutting down")
                return False
            # Upgrades being accepted count too: the pool only holds a session
            # once it runs, after the 101 went out, and a full pool must be
            # refused before it.
            if len(self._pool) + self._starting >= self._pool.max_children:
                await _refuse_for_now(request, 503, "this gateway holds as many sessions as it may")
                return False
            self._starting += 1  # given back by _start_session once the pool counts it
            return await self._start_session(
                upgrade, principal=principal, session_id=session_id, slot=slot
            )
        finally:
            # Once the session has started the slot is given back when it
            # terminates; release() only ever gives it back once.
            if not slot.started:
                slot.release()

    async def _start_session(
        self,
        upgrade: Upgrade,
        *,
        principal: Principal,
        session_id: str,
        slot: SessionSlot,
    ) -> bool:
        """Accept and start the session; ``False`` if it could not start (socket closed).

        Counted in ``_starting`` until the pool holds it: ``start_child``
        takes its slot before its first wait.
        """
        try:
            if upgrade.transport.overflowed:  # sent too much while waiting: dropped
                return False
            socket = TrioWebSocket(await upgrade.request.accept(), upgrade)
            session = SessionActor(
                session_id=session_id,
                tenant_id=principal.tenant_id,
                user_id=principal.subject,
                socket=socket,
                context=self._ctx,
            )
            spec = ChildSpec(
                id=slot.child_id,
                start=session.serve,
                restart="temporary",
                kind="actor",
                introspect=slot.statistics,
                on_terminated=slot.terminated,
            )
        finally:
            self._starting -= 1
        try:
            await self._pool.start_child(spec)
        except PoolFull:
            await self._close_unstarted(socket, CLOSE_TRY_AGAIN, "server at capacity")
            return False
        except (ChildStartFailed, SupervisorNotRunning) as error:
            await self._close_unstarted(socket, *_start_failure(session_id, error))
            return False
        slot.started = True
        if self._stop is not None and self._stop.requested:
            # The stop began while this session was starting, after the
            # listener listed the sessions to close: close this one too (1001).
            await self._pool.stop_child(spec.id)
        return True

    async def _close_unstarted(self, socket: TrioWebSocket, code: int, reason: str) -> None:
        """Close a socket no session runs on, waiting for the client at most ``close_timeout_s``.

        After that the stream is closed regardless (by the caller's cleanup).
        """
        with trio.move_on_after(self._ctx.settings.close_timeout_s):
            await socket.close(code, reason)


def _start_failure(
    session_id: str, error: ChildStartFailed | SupervisorNotRunning
) -> tuple[int, str]:
    """Log why a session did not start (one line) and choose its close code and reason.

    Redis not taking the presence registration in time is transient: 1013,
    try again later. Anything else is an internal error: 1011.
    """
    if isinstance(error, ChildStartFailed) and isinstance(
        error.reason.exception, PresenceUnavailable
    ):
        log.warning(
            "session %s refused, presence registry unavailable: %s",
            session_id,
            error.reason.message,
        )
        return CLOSE_TRY_AGAIN, "try again later"
    log.warning("session %s could not start: %s", session_id, error)
    return CLOSE_INTERNAL, "session could not start"


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


_TITLES = {429: "Too Many Requests", 503: "Service Unavailable"}


async def _refuse_for_now(request: WebSocketRequest, status: int, detail: str) -> None:
    """A 429 or 503 refusal with ``Retry-After``: the client may try again later."""
    retry_after = [(b"Retry-After", str(RETRY_AFTER_S).encode())]
    await _refuse(request, status, _TITLES[status], detail, retry_after)


async def _refuse(
    request: WebSocketRequest,
    status: int,
    title: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    metrics.WEBSOCKET_REFUSED.labels(status=str(status)).inc()
    body = msgspec.json.encode(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    )
    await request.reject(
        status,
        extra_headers=[(b"Content-Type", b"application/problem+json"), *(headers or [])],
        body=body,
    )


async def _drop(stream: trio.SocketStream) -> None:
    """Log the failure being handled and close that connection; the listener goes on."""
    log.debug("websocket connection failed; dropped it", exc_info=True)
    with trio.CancelScope(shield=True):
        await stream.aclose()


class _GuardedReader:
    """Where trio-websocket starts one connection's reader task: the listener's nursery.

    ``open_server_connection`` wants a nursery for its reader task and only calls
    ``start_soon`` on it. Started through this object, the reader runs in the
    listener's connections nursery behind a guard: a reader that fails drops
    its own connection (and the upgrade waiting for it, if any), never the
    listener; a reader cancelled with the listener closes its connection.

    Attributes:
        upgrade: the scope of the upgrade waiting for this reader's request;
            cleared once the upgrade is over (the scope is not kept alive).
    """

    __slots__ = ("_nursery", "_stream", "upgrade")

    def __init__(
        self, nursery: trio.Nursery, stream: trio.SocketStream, upgrade: trio.CancelScope
    ) -> None:
        self._nursery = nursery
        self._stream = stream
        self.upgrade: trio.CancelScope | None = upgrade

    def start_soon(self, reader: Callable[[], Awaitable[object]]) -> None:
        self._nursery.start_soon(self._run, reader)

    async def _run(self, reader: Callable[[], Awaitable[object]]) -> None:
        ended = False
        try:
            try:
                await reader()
            except* Exception:
                await _drop(self._stream)
            ended = True
        finally:
            if not ended:  # cancelled with the listener's connections
                await trio.aclose_forcefully(self._stream)
            elif self.upgrade is not None:  # the connection ended before its request was whole
                self.upgrade.cancel()
