"""Batch ingestion, deliveries listing, health, metrics and OpenAPI against a real gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.ids import new_notification_id
from notifactor.domain.notification import DeliveryUpdate, Notification
from tests.e2e.conftest import RunningGateway, Storage, notification, serve_gateway
from tests.e2e.test_gateway_ingest import assert_problem


async def test_batch_per_item_results_in_order(gateway: RunningGateway, tenant: str) -> None:
    items = [
        notification(tenant, user_id="a"),
        notification(tenant, content=""),
        {"nope": 1},
        notification(tenant, user_id="b"),
    ]
    async with gateway.client() as client:
        r = await client.post(
            "/v1/notifications:batch", json={"notifications": items}, headers=gateway.auth(tenant)
        )
        assert r.status_code == 202, r.text
        results = r.json()["results"]
        assert len(results) == 4
        assert "id" in results[0]
        assert "id" in results[3]
        assert results[1]["error"]["status"] == 422
        assert [e["field"] for e in results[1]["error"]["errors"]] == ["content"]
        assert results[2]["error"]["status"] == 422
        for index in (0, 3):
            g = await client.get(
                f"/v1/notifications/{results[index]['id']}", headers=gateway.auth(tenant)
            )
            assert g.status_code == 200
        # A retried batch with the same Idempotency-Key returns the same ids.
        headers = {**gateway.auth(tenant), "Idempotency-Key": "batch-1"}
        first = await client.post(
            "/v1/notifications:batch", json={"notifications": items[:1]}, headers=headers
        )
        again = await client.post(
            "/v1/notifications:batch", json={"notifications": items[:1]}, headers=headers
        )
        assert first.json() == again.json()


async def test_a_batch_item_never_shares_an_idempotency_key_with_a_single_request(
    gateway: RunningGateway, tenant: str
) -> None:
    """A single POST keyed ``order-7#0`` and a batch keyed ``order-7`` are different requests."""
    async with gateway.client() as client:
        single = await client.post(
            "/v1/notifications",
            json=notification(tenant, content="single"),
            headers={**gateway.auth(tenant), "Idempotency-Key": "order-7#0"},
        )
        assert single.status_code == 202
        batch = await client.post(
            "/v1/notifications:batch",
            json={"notifications": [notification(tenant, content="batch")] * 2},
            headers={**gateway.auth(tenant), "Idempotency-Key": "order-7"},
        )
        assert batch.status_code == 202
        ids = [result["id"] for result in batch.json()["results"]]
        assert single.json()["id"] not in ids
        for ident in ids:
            stored = await client.get(f"/v1/notifications/{ident}", headers=gateway.auth(tenant))
            assert stored.status_code == 200
            assert stored.json()["content"] == "batch"


async def test_batch_shape_errors(gateway: RunningGateway, tenant: str) -> None:
    async with gateway.client() as client:
        auth = gateway.auth(tenant)
        assert_problem(await client.post("/v1/notifications:batch", json=[1], headers=auth), 422)
        assert_problem(
            await client.post("/v1/notifications:batch", json={"notifications": []}, headers=auth),
            422,
        )
        too_many = {"notifications": [notification(tenant, content="x")] * 501}
        assert_problem(
            await client.post("/v1/notifications:batch", json=too_many, headers=auth), 422
        )
        full = {"notifications": [notification(tenant, content="x")] * 500}
        r = await client.post("/v1/notifications:batch", json=full, headers=auth)
        assert r.status_code == 202
        assert all("id" in x for x in r.json()["results"])
        # 500 notifications of 1 KiB each: far over the single-request 64 KiB,
        # within the batch's own limit (1 MiB).
        ordinary = {"notifications": [notification(tenant, content="y" * 1024)] * 500}
        r = await client.post("/v1/notifications:batch", json=ordinary, headers=auth)
        assert r.status_code == 202, r.text
        assert len(r.json()["results"]) == 500
        oversized = {"notifications": [notification(tenant, content="z" * 8000)] * 140}
        assert_problem(
            await client.post("/v1/notifications:batch", json=oversized, headers=auth), 413
        )


async def test_deliveries_paging_and_query_errors(gateway: RunningGateway, tenant: str) -> None:
    # Within the retention (30 days): Cassandra never returns rows past their TTL.
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    notes = [
        Notification(
            tenant_id=tenant,
            id=new_notification_id(),
            user_id=f"u{i % 2}",
            channel="alerts",
            content=f"n{i}",
            created_at=base + timedelta(seconds=i),
        )
        for i in range(7)
    ]
    await gateway.store.save_notifications(notes)
    await gateway.store.apply_delivery_updates(
        [
            DeliveryUpdate(
                tenant_id=tenant,
                notification_id=n.id,
                recipient_id=n.user_id,
                created_at=n.created_at,
                state=DeliveryState.DELIVERED,
                event_time=n.created_at + timedelta(seconds=1),
                attempts=1,
            )
            for n in notes
        ]
    )
    auth = gateway.auth(tenant)
    async with gateway.client() as client:
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
            r = await client.get(f"/v1/tenants/{tenant}/deliveries", params=params, headers=auth)
            assert r.status_code == 200, r.text
            page = r.json()
            seen += [item["notification_id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [n.id for n in reversed(notes)]
        r = await client.get(
            f"/v1/tenants/{tenant}/deliveries",
            params={"user_id": "u1", "state": "delivered"},
            headers=auth,
        )
        assert {i["user_id"] for i in r.json()["items"]} == {"u1"}
        item = r.json()["items"][0]
        assert set(item) == {
            "notification_id",
            "user_id",
            "channel",
            "state",
            "attempts",
            "last_error",
            "updated_at",
        }

        bad = await client.get(
            f"/v1/tenants/{tenant}/deliveries",
            params={
                "limit": "0",
                "state": "lost",
                "since": "yesterday",
                "user_id": "a b",
                "zzz": "1",
            },
            headers=auth,
        )
        problem = assert_problem(bad, 422)
        assert {e["field"] for e in problem["errors"]} == {
            "limit",
            "state",
            "since",
            "user_id",
            "zzz",
        }  # type: ignore[attr-defined]
        assert_problem(
            await client.get(
                f"/v1/tenants/{tenant}/deliveries", params={"cursor": "garbage!"}, headers=auth
            ),
            400,
        )


async def test_health_metrics_openapi(gateway: RunningGateway, tenant: str) -> None:
    async with gateway.client() as client:
        assert (await client.get("/health/live")).status_code == 200
        r = await client.get("/health")
        assert r.status_code == 200
        assert r.json() == {
            "status": "ok",
            "checks": {"redis": "ok", "storage": "ok", "supervision": "ok"},
        }
        await client.post(
            "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
        )
        m = await client.get("/metrics")
        assert m.status_code == 200
        assert m.headers["content-type"].startswith("text/plain")
        assert "notifications_ingested_total" in m.text
        doc = (await client.get("/openapi.json")).json()
        assert doc["openapi"] == "3.1.0"
        assert set(doc["paths"]) >= {
            "/v1/notifications",
            "/v1/notifications:batch",
            "/v1/notifications/{id}",
            "/v1/tenants/{tenantId}/deliveries",
            "/health/live",
            "/health",
            "/metrics",
            "/openapi.json",
        }


async def test_health_names_the_failing_check(
    redis_url: str, tmp_path: Path, storage: Storage
) -> None:
    async def broken() -> None:
        raise RuntimeError("a subtree gave up")

    async with (
        serve_gateway(redis_url, tmp_path, cassandra=storage, supervision_check=broken) as gateway,
        gateway.client() as client,
    ):
        r = await client.get("/health")
    assert r.status_code == 503
    assert r.json()["checks"] == {"redis": "ok", "storage": "ok", "supervision": "fail"}
    assert r.json()["failing"] == ["supervision"]
