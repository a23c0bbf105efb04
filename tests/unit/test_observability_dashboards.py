"""The dashboard and the alert rules only name metrics the processes really export.

Names are taken from every PromQL expression and resolved against the
families registered on the process registry after importing every module of
the roles (gateway, observability, dispatcher, edge), plus the supervision
collector. A name that nothing defines fails; names the WebSocket edge is to
define are skipped (with a reason) only while ``notifactor.edge`` does not exist.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.core import Metric

from notifactor.observability.supervision_metrics import SupervisionCollector

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "observability" / "grafana-dashboard.json"
ALERTS = ROOT / "infra" / "observability" / "alerts.yml"

ROLE_PACKAGES = ("notifactor.gateway", "notifactor.observability", "notifactor.dispatcher")
#: Metrics SPEC §7 requires that the WebSocket edge (accept → written to socket) owns.
EDGE_METRICS = frozenset(
    {"delivery_latency_ms", "notifications_delivered_total", "websocket_active_sessions"}
)
_KEYWORDS = frozenset({"by", "without", "and", "or", "unless", "bool", "offset", "on", "ignoring"})
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def dashboard_expressions() -> list[str]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def alert_expressions() -> list[str]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [str(rule["expr"]) for group in document["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """Metric names used in a PromQL expression (selectors, not functions or labels)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name not in _KEYWORDS:
            names.add(name)
    return names


def exposed_names(families: Iterable[Metric]) -> set[str]:
    """Every sample name the families can expose (``_total``, ``_bucket``, …)."""
    names: set[str] = set()
    for family in families:
        base = family.name
        names.update(base + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def _import_all(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        return
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def registered_names() -> set[str]:
    for package in (*ROLE_PACKAGES, "notifactor.edge"):
        _import_all(package)
    families = [*REGISTRY.collect(), *SupervisionCollector(lambda: None).describe()]
    return exposed_names(families)


def used_names() -> list[str]:
    names: set[str] = set()
    for expr in (*dashboard_expressions(), *alert_expressions()):
        names |= metric_names(expr)
    return sorted(names)


def test_expression_parser_finds_selectors_only() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket"
        '{status=~"5..", route!="x"}[5m]))) / on (instance) up > 0.5 and bool foo_total offset 5m'
    )
    assert metric_names(expr) == {"http_request_duration_seconds_bucket", "up", "foo_total"}


def test_dashboard_and_alerts_parse_and_cover_the_required_views() -> None:
    used = set(used_names())
    required = {
        "notifications_ingested_total",
        "delivery_latency_ms_bucket",
        "stream_consumer_lag",
        "retry_attempts_total",
        "dlq_events_total",
        "websocket_active_sessions",
        "actor_restarts_total",
        "http_requests_total",
    }
    assert required <= used
    alerts = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in alerts["groups"]:
        for rule in group["rules"]:
            assert {"alert", "expr", "labels", "annotations"} <= set(rule)


def test_an_unknown_name_is_caught() -> None:
    assert "no_such_metric_total" not in registered_names()


@pytest.mark.parametrize("name", used_names())
def test_every_metric_in_the_dashboard_and_alerts_is_registered(name: str) -> None:
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    edge_owned = name in EDGE_METRICS or base in EDGE_METRICS
    names = registered_names()
    if name not in names and edge_owned and importlib.util.find_spec("notifactor.edge") is None:
        pytest.skip(f"{name} is to be defined by notifactor.edge, which does not exist yet")
    assert name in names, f"{name} is used in infra/observability but no module registers it"
