"""Open a coredis client the way every notifactor component needs it.

coredis (6.x) is built on anyio and runs natively under Trio, but only inside
``async with client:`` (it owns a task group for its connections). Enter the
client in a parent task and hand it to children; they share its pool.

Responses are **bytes** (``decode_responses=False``). Stream payloads are
msgspec-encoded bytes that msgspec decodes directly, so decoding to ``str``
first would only cost time and a second copy; keys, field names and stream ids
come back as ``bytes`` too, and code compares against ``b"..."`` literals.

Pool sizing: a blocking command (``XREADGROUP ... BLOCK``, ``BLPOP``) holds a
pooled connection for the whole block, and a pipeline holds one until it is
executed; other commands share connections. When the pool is exhausted
callers wait, so size it with :func:`pool_size_for`.

Timeouts: the client sets no read timeout of its own, because one bound for
every command would also cut the blocking reads (``XREADGROUP ... BLOCK``)
short. Each caller bounds its calls instead: the gateway's request handlers
with a Trio cancel scope (``gateway.problems.REDIS_DEADLINE_S``, a 503 past
it), its ingest calls through the ingest bus's own watchdog
(``IngestSettings.call_timeout_s``, the same 2 s), the DLQ adapter
(``call_timeout_s`` per call), the dispatcher's attempt bounds. A cancelled command is safe: its reply, when it comes, is matched to
it and dropped, so the connection stays usable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import coredis
import trio

#: Errors meaning Redis could not take the call now (down, loading, failing
#: over), as opposed to a bug or a bad script.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.BusyLoadingError,
    coredis.exceptions.ReadOnlyError,
    coredis.exceptions.TryAgainError,
    TimeoutError,
    OSError,
)


@contextmanager
def bounded_call(timeout_s: float, unavailable: Callable[[str], Exception]) -> Iterator[None]:
    """One Redis call: unreachable, or slower than ``timeout_s``, raises ``unavailable(reason)``."""
    try:
        with trio.fail_after(timeout_s):
            yield
    except trio.TooSlowError:
        raise unavailable(f"Redis did not answer within {timeout_s:g} s") from None
    except UNAVAILABLE as error:
        raise unavailable(f"Redis: {type(error).__name__}: {error}") from error


DEFAULT_MAX_CONNECTIONS = 32
_HEADROOM = 8


def pool_size_for(*, blocking_readers: int, concurrent_pipelines: int) -> int:
    """Connections needed so blocking readers never starve ordinary commands.

    Args:
        blocking_readers: Tasks that may sit in a blocking read at the same time.
        concurrent_pipelines: Pipelines that may be open at the same time.
    """
    return blocking_readers + concurrent_pipelines + _HEADROOM


@asynccontextmanager
async def open_redis(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float | None = None,
    client_name: str | None = None,
) -> AsyncIterator[coredis.Redis[bytes]]:
    """Yield an entered client for ``url``; the pool closes when the block exits.

    Args:
        url: ``redis://host:port/db``, ``rediss://`` (TLS) or ``unix:///path/to.sock``;
            credentials and ``?db=`` may be given the usual way.
        max_connections: Pool capacity; see :func:`pool_size_for`.
        pool_timeout: Seconds to wait for a free pooled connection before
            raising; None waits as long as the caller's cancel scope allows.
        client_name: Shown by ``CLIENT LIST``, which helps when debugging a
            busy server.
    """
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url,
        decode_responses=False,
        max_connections=max_connections,
        pool_timeout=pool_timeout,
        client_name=client_name,
    )
    async with client:
        yield client
