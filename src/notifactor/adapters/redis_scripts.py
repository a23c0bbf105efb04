"""Lua scripts run with one ``EVALSHA`` round trip, each timed by name."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import coredis
from coredis.exceptions import NoScriptError

from notifactor.observability.metrics import REDIS_SCRIPT_DURATION


class EvalShaScript:
    """A Lua script run with ``EVALSHA`` (one round trip), loaded only on ``NOSCRIPT``.

    coredis' own ``Script`` does the same, but its per-call bookkeeping
    (pipeline ``isinstance`` checks against generic classes, a retry-policy
    object per call) was the largest single cost of ``POST /v1/notifications``
    in the gateway profile. The SHA1 is computed once here.
    """

    def __init__(self, client: coredis.Redis[Any], source: str, name: str) -> None:
        self._client = client
        self.source = source
        self.name = name
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self._ok = REDIS_SCRIPT_DURATION.labels(script=name, outcome="ok")
        self._error = REDIS_SCRIPT_DURATION.labels(script=name, outcome="error")

    async def __call__(
        self, *, keys: Sequence[str | bytes], args: Sequence[str | int | float | bytes]
    ) -> Any:
        """The script's reply; the round trip goes to ``redis_script_duration_seconds``."""
        started = time.perf_counter()
        try:
            try:
                reply = await self._client.evalsha(self.sha, keys=keys, args=args)
            except NoScriptError:
                # A restarted or flushed server: load once, then the same call again.
                await self._client.script_load(self.source)
                reply = await self._client.evalsha(self.sha, keys=keys, args=args)
        except BaseException:
            self._error.observe(time.perf_counter() - started)
            raise
        self._ok.observe(time.perf_counter() - started)
        return reply
