"""A Trio-friendly bridge around a cassandra-driver session.

The driver does its I/O on its own libev thread and reports results through
``ResponseFuture`` callbacks on that thread. We turn each result into a Trio
wake-up with ``TrioToken.run_sync_soon``, which only queues a callback and
never blocks the driver thread (``trio.from_thread.run_sync`` would wait for
Trio and stall every other in-flight request). The calls that block inside the
driver (connect, prepare, shutdown) run on Trio worker threads.

The Trio token is looked up per call, so one session can serve several Trio
runs in turn (the test suite shares one across tests).

Rows are the driver's default named tuples (``row.column`` and ``row[0]``).
Driver exceptions (``InvalidRequest``, ``Unavailable``, ``OperationTimedOut``,
...) pass through unchanged: callers decide which ones are retryable.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self, TypeAlias

import trio
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, ResponseFuture
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import PreparedStatement, SimpleStatement, Statement

Row: TypeAlias = Any
"""A driver row: a named tuple whose fields are the selected columns."""

Query: TypeAlias = str | Statement | PreparedStatement
"""CQL text, a SimpleStatement/BoundStatement/BatchStatement, or a PreparedStatement."""

Params: TypeAlias = Sequence[Any] | dict[str, Any] | None


class CassandraSession:
    """An open driver session whose requests are awaited from Trio.

    Create it with :func:`connect_cassandra`; close it with :meth:`close` or
    ``async with``.
    """

    def __init__(self, cluster: Cluster, session: Any, *, request_timeout: float) -> None:
        self._cluster = cluster
        self._session = session
        self._request_timeout = request_timeout
        self._prepared: dict[str, PreparedStatement] = {}

    @property
    def driver_session(self) -> Any:
        """The raw ``cassandra.cluster.Session``, for what this bridge does not cover."""
        return self._session

    async def execute(self, query: Query, params: Params = None) -> list[Row]:
        """Run one statement and return all its rows (every page).

        Pages after the first are fetched by the same request future, one round
        trip each; for large results use :meth:`execute_page`.

        Raises:
            Exception: the driver's own exception for the failure, unchanged.
        """
        future = self._session.execute_async(query, params, timeout=self._request_timeout)
        await _wait_for(future)
        rows = list(future.result().current_rows)
        while future.has_more_pages:
            future.start_fetching_next_page()
            await _wait_for(future)
            rows.extend(future.result().current_rows)
        return rows

    async def execute_page(
        self,
        query: Query,
        params: Params = None,
        *,
        fetch_size: int,
        paging_state: bytes | None = None,
    ) -> tuple[list[Row], bytes | None]:
        """Fetch one page of at most ``fetch_size`` rows.

        Pass the returned paging state back to get the next page; None means
        the result is exhausted. A paging state is opaque and only valid for
        the same query and parameters. Statement objects are copied, never
        modified.

        Raises:
            Exception: the driver's own exception for the failure, unchanged.
        """
        statement = _with_fetch_size(query, params, fetch_size)
        if isinstance(query, PreparedStatement):
            params = None  # already bound by _with_fetch_size
        future = self._session.execute_async(
            statement, params, timeout=self._request_timeout, paging_state=paging_state
        )
        await _wait_for(future)
        result = future.result()
        return list(result.current_rows), result.paging_state

    async def prepare(self, cql: str) -> PreparedStatement:
        """Prepare ``cql`` once per session; later calls return the cached statement.

        Raises:
            Exception: the driver's own exception (e.g. ``InvalidRequest``), unchanged.
        """
        prepared = self._prepared.get(cql)
        if prepared is None:
            prepared = await trio.to_thread.run_sync(self._session.prepare, cql)
            self._prepared[cql] = prepared
        return prepared

    async def close(self) -> None:
        """Shut down the cluster object: its connections and its I/O threads."""
        await trio.to_thread.run_sync(self._cluster.shutdown)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with trio.CancelScope(shield=True):
            await self.close()


#: Longest pause between the driver's tries to reach a node that went down.
#: The driver's own default grows to 600 s, so after an outage of a few
#: minutes a node back up could wait minutes more to be used again.
RECONNECT_MAX_DELAY_S = 10.0
RECONNECT_BASE_DELAY_S = 0.5


def reconnection_policy() -> ExponentialReconnectionPolicy:
    """Tries at 0.5 s, 1 s, 2 s, ... apart, never more than 10 s, for as long as it takes."""
    return ExponentialReconnectionPolicy(
        RECONNECT_BASE_DELAY_S, RECONNECT_MAX_DELAY_S, max_attempts=None
    )


async def connect_cassandra(
    contact_points: Sequence[tuple[str, int]],
    *,
    keyspace: str | None = None,
    request_timeout: float = 10.0,
    local_dc: str | None = None,
    consistency: str = "LOCAL_QUORUM",
) -> CassandraSession:
    """Connect to the cluster and return a session.

    Uses protocol v5 (Cassandra 5.0; no downgrade warnings) and token-aware
    routing over the local datacenter, so prepared statements go straight to
    a replica. A node that goes down is tried again at most
    :data:`RECONNECT_MAX_DELAY_S` apart (:func:`reconnection_policy`).

    Args:
        contact_points: ``(host, native_port)`` pairs; the first port is also
            used for peers discovered without a port.
        keyspace: Keyspace to ``USE``; None leaves queries fully qualified.
        request_timeout: Client-side bound per request, in seconds. The driver
            raises ``OperationTimedOut`` when it expires.
        local_dc: The datacenter to route to; None takes the first contact
            point's datacenter, which is right for single-DC clusters.
        consistency: Consistency level of every request (a
            ``cassandra.ConsistencyLevel`` name). ``LOCAL_QUORUM`` for both
            writes and reads means a read sees every acknowledged write while
            one replica per datacenter is down.

    Raises:
        cassandra.cluster.NoHostAvailable: no contact point could be reached.
    """
    if not contact_points:
        raise ValueError("contact_points must not be empty")
    level = ConsistencyLevel.name_to_value.get(consistency)
    if level is None:
        raise ValueError(f"unknown consistency level {consistency!r}")
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc)),
        request_timeout=request_timeout,
        consistency_level=level,
    )

    def connect() -> tuple[Cluster, Any]:
        # Cluster() resolves host names, so it blocks too.
        cluster = Cluster(
            contact_points=list(contact_points),
            port=contact_points[0][1],
            protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            reconnection_policy=reconnection_policy(),
        )
        try:
            return cluster, cluster.connect(keyspace)
        except BaseException:
            cluster.shutdown()
            raise

    cluster, session = await trio.to_thread.run_sync(connect)
    return CassandraSession(cluster, session, request_timeout=request_timeout)


async def _wait_for(future: ResponseFuture) -> None:
    """Sleep until the driver completes the current page of ``future``.

    If the caller is cancelled first, the request is abandoned: the driver
    still completes it and runs our callback, which then only sets an event
    nobody waits for (or does nothing once Trio has finished). The server may
    still apply an abandoned write.
    """
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_result: object) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.clear_callbacks()  # earlier pages registered wakers for their own events
    future.add_callbacks(wake, wake)
    await done.wait()


def _with_fetch_size(query: Query, params: Params, fetch_size: int) -> Statement:
    if isinstance(query, str):
        return SimpleStatement(query, fetch_size=fetch_size)
    statement = query.bind(params) if isinstance(query, PreparedStatement) else copy.copy(query)
    statement.fetch_size = fetch_size
    return statement
