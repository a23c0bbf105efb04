"""Metric definitions, the supervision collector, the instrumented ports and the config keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client import REGISTRY, CollectorRegistry

from notifactor.actors.mailbox import MailboxStatistics
from notifactor.config import ConfigError, load_config
from notifactor.domain.backoff import BackoffPolicy
from notifactor.domain.notification import Notification
from notifactor.gateway.access import method_label
from notifactor.observability.instrumented import InstrumentedStore
from notifactor.observability.metrics import tenant_label
from notifactor.observability.supervision_metrics import (
    SupervisionCollector,
    bounded_samples,
)
from notifactor.ports.notification_store import NotificationStore, TransientStoreError
from notifactor.supervisors import NodeStatistics, Supervisor
from tests.supervisors.probe import Probe


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_tenant_label_keeps_only_allowlisted_ids() -> None:
    assert tenant_label(("acme", "globex"), "acme") == "acme"
    assert tenant_label(("acme",), "initech") == "other"
    assert tenant_label((), "acme") == "other"


def test_unknown_methods_fold_into_one_label() -> None:
    assert method_label("POST") == "POST"
    assert method_label("BREW") == "OTHER"


def _node(id: str, kind: Any = "actor", **kwargs: Any) -> NodeStatistics:
    return NodeStatistics(id=id, kind=kind, state=kwargs.pop("state", "running"), **kwargs)


def test_children_of_dynamic_supervisors_are_folded_into_one_series() -> None:
    sessions = [
        _node(
            f"session-{i}",
            restarts=1,
            mailbox=MailboxStatistics(capacity=64, depth=i, peak=i * 2, closed=False),
        )
        for i in range(50)
    ]
    root = _node(
        "root",
        "supervisor",
        children=(
            _node("writer", mailbox=MailboxStatistics(capacity=10, depth=3, peak=7, closed=False)),
            _node("sessions", "dynamic_supervisor", max_children=100, children=tuple(sessions)),
        ),
    )
    samples = bounded_samples(root)
    assert set(samples) == {"root", "root/writer", "root/sessions", "root/sessions/*"}
    folded = samples["root/sessions/*"]
    assert (folded.restarts, folded.depth, folded.peak, folded.capacity) == (50, 1225, 98, 64)
    assert samples["root/writer"].depth == 3
    assert samples["root"].depth is None


async def test_collector_reports_a_restart_of_a_live_tree(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor(
        "root",
        [probe.spec("a"), probe.spec("b")],
        backoff=BackoffPolicy(min_s=0.0, max_s=0.0, jitter=0.0),
    )
    registry = CollectorRegistry()
    registry.register(SupervisionCollector(sup.statistics))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert registry.get_sample_value("actor_restarts_total", {"child": "root/b"}) == 0
        assert registry.get_sample_value("supervision_node_up", {"child": "root/b"}) == 1
        probe.crash("b")
        await probe.wait_for("ready", "b", 2)
        assert registry.get_sample_value("actor_restarts_total", {"child": "root/b"}) == 1
        assert registry.get_sample_value("actor_restarts_total", {"child": "root/a"}) == 0
        sup.request_stop()


def test_collector_without_a_tree_reports_nothing() -> None:
    registry = CollectorRegistry()
    registry.register(SupervisionCollector(lambda: None))
    assert registry.get_sample_value("actor_restarts_total", {"child": "root"}) is None


class _FakeStore:
    """Only what the test calls; the rest of the port is never reached."""

    def __init__(self) -> None:
        self.saved: list[Notification] = []
        self.fail_next = False

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise TransientStoreError("busy")
        self.saved.extend(notifications)

    async def ping(self) -> None:
        return None


async def test_instrumented_store_times_calls_and_passes_errors_through() -> None:
    fake = _FakeStore()
    store: NotificationStore = InstrumentedStore(fake)  # type: ignore[arg-type]
    ok = {"operation": "save_notifications", "outcome": "ok"}
    transient = {"operation": "save_notifications", "outcome": "transient"}
    before_ok = sample("storage_operation_duration_seconds_count", ok)
    before_transient = sample("storage_operation_duration_seconds_count", transient)
    before_items = sample("storage_write_batch_items_sum", {"operation": "save_notifications"})
    await store.save_notifications([])
    fake.fail_next = True
    with pytest.raises(TransientStoreError):
        await store.save_notifications([])
    assert sample("storage_operation_duration_seconds_count", ok) == before_ok + 1
    assert sample("storage_operation_duration_seconds_count", transient) == before_transient + 1
    assert (
        sample("storage_write_batch_items_sum", {"operation": "save_notifications"}) == before_items
    )


def test_observability_config_from_toml_and_environment(tmp_path: Any) -> None:
    path = tmp_path / "notifactor.toml"
    path.write_text(
        '[observability]\ntenant_label_allowlist = ["acme", "globex"]\nmetrics_port = 9100\n'
    )
    config = load_config(path, env={})
    assert config.observability.tenant_label_allowlist == ("acme", "globex")
    assert config.observability.metrics_port == 9100
    from_env = load_config(
        None,
        env={
            "NOTIFACTOR_OBSERVABILITY__TENANT_LABEL_ALLOWLIST": "acme, initech",
            "NOTIFACTOR_OBSERVABILITY__TREE_LOOPBACK_WITHOUT_TOKEN": "false",
        },
    )
    assert from_env.observability.tenant_label_allowlist == ("acme", "initech")
    assert from_env.observability.tree_loopback_without_token is False
    defaults = load_config(None, env={})
    assert defaults.observability.metrics_port == 9464
    assert defaults.observability.tenant_label_allowlist == ()


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"NOTIFACTOR_OBSERVABILITY__TENANT_LABEL_ALLOWLIST": "bad tenant"}, "tenant_label"),
        ({"NOTIFACTOR_OBSERVABILITY__TENANT_LABEL_ALLOWLIST": "other"}, "tenant_label"),
        ({"NOTIFACTOR_OBSERVABILITY__METRICS_PORT": "70000"}, "metrics_port"),
        ({"NOTIFACTOR_OBSERVABILITY__METRICS_HOST": " "}, "metrics_host"),
    ],
)
def test_bad_observability_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, env=env)
    assert str(error.value).startswith(f"observability.{key}")
