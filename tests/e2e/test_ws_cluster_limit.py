"""``max_ws_connections`` holds across every gateway of a cluster (SPEC §2, §5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from websockets.exceptions import InvalidStatus

from notifactor.config import TenantPolicy
from tests.e2e.stores import Storage
from tests.e2e.test_ws_protocol import _refused
from tests.e2e.ws_support import GENEROUS, WsClient, running_stack, stack_config

pytestmark = pytest.mark.e2e

LIMITED = TenantPolicy(rate_per_s=1000, burst=1000, daily_quota=0, max_ws_connections=2)


async def test_tenant_limit_spans_two_gateways_sharing_redis(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    tenants = {"default": GENEROUS, "small": LIMITED}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config_a = stack_config(tmp_path / "a", tenants=tenants, instance_id="gw-limit-a")
    config_b = stack_config(tmp_path / "b", tenants=tenants, instance_id="gw-limit-b")
    async with (
        running_stack(
            redis_url,
            tmp_path / "a",
            redis_prefix,
            storage=storage,
            config=config_a,
            dispatcher=False,
            http=False,
        ) as a,
        running_stack(
            redis_url,
            tmp_path / "b",
            redis_prefix,
            storage=storage,
            config=config_b,
            dispatcher=False,
            http=False,
        ) as b,
    ):
        first = await a.connect("small", "u1")
        second = await b.connect("small", "u2")
        members = await a.redis.zrange(f"{redis_prefix}wsconn:small", 0, -1)
        assert sorted(m.decode().partition("/")[0] for m in members) == [
            "gw-limit-a",
            "gw-limit-b",
        ]
        for stack in (a, b):  # each gateway holds one session, the tenant two
            refused = await _refused(stack.url_for("small", "u3"))
            assert refused.response.status_code == 429
            assert refused.response.headers["Retry-After"]
        other = await a.connect("big", "u1")  # other tenants are not affected
        await first.close()
        third: WsClient | None = None
        with trio.fail_after(5):
            while third is None:  # the slot frees once gateway a has seen the close
                try:
                    third = await b.connect("small", "u3")
                except InvalidStatus as refused_again:
                    status = refused_again.response.status_code
                    await trio.sleep(0.05)
                    assert status == 429
        assert len(await a.redis.zrange(f"{redis_prefix}wsconn:small", 0, -1)) == 2
        for client in (second, third, other):
            await client.close()
