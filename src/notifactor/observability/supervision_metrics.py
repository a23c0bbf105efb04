"""Supervision metrics read from the live tree at scrape time.

:class:`SupervisionCollector` walks ``root.statistics()`` on every scrape and
reports, per node, with label ``child`` = the path of ids joined with ``/``:

* ``actor_restarts_total`` — restarts of that node by its parent (counter);
* ``mailbox_depth`` / ``mailbox_depth_peak`` / ``mailbox_capacity`` — for
  nodes with a mailbox (actors);
* ``supervision_node_up`` — 1 while the node is ``running``, else 0.

Children of a dynamic supervisor (one per WebSocket session, say) are not
reported one by one — that would be one series per session — but folded into
``<supervisor path>/*``: restarts and depths summed, peak and capacity the
largest. So the series are bounded by the static shape of the tree.

Nothing is stored between scrapes: a restarted node keeps its path, and its
restart count comes from its parent's bookkeeping, so the counter is
monotonic for the life of the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import attrs
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notifactor.supervisors.statistics import NodeStatistics

RootSnapshot = Callable[[], NodeStatistics | None]


@attrs.define
class NodeSample:
    """What one (possibly aggregated) ``child`` label reports."""

    restarts: int = 0
    running: bool = True
    depth: int | None = None
    peak: int | None = None
    capacity: int | None = None

    def add(self, node: NodeStatistics) -> None:
        self.restarts += node.restarts
        self.running = self.running and node.state == "running"
        if node.mailbox is not None:
            self.depth = (self.depth or 0) + node.mailbox.depth
            self.peak = max(self.peak or 0, node.mailbox.peak)
            self.capacity = max(self.capacity or 0, node.mailbox.capacity)


def bounded_samples(root: NodeStatistics) -> dict[str, NodeSample]:
    """Samples by ``child`` label, dynamic supervisors' children folded into ``…/*``."""
    samples: dict[str, NodeSample] = {}
    for label, node in _labelled(root, (), folded=False):
        samples.setdefault(label, NodeSample()).add(node)
    return samples


def _labelled(
    node: NodeStatistics, parent: tuple[str, ...], *, folded: bool
) -> Iterator[tuple[str, NodeStatistics]]:
    path = (*parent, "*" if folded else node.id)
    yield "/".join(path), node
    fold_children = node.kind == "dynamic_supervisor"
    for child in node.children:
        yield from _labelled(child, path, folded=fold_children)


class SupervisionCollector(Collector):
    """A prometheus collector over a tree snapshot function (None: no tree yet)."""

    def __init__(self, snapshot: RootSnapshot) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        # Declared without samples so registering never calls the snapshot.
        return list(_families())

    def collect(self) -> Iterable[Metric]:
        restarts, up, depth, peak, capacity = _families()
        root = self._snapshot()
        if root is not None:
            for label, sample in sorted(bounded_samples(root).items()):
                restarts.add_metric([label], sample.restarts)
                up.add_metric([label], 1 if sample.running else 0)
                if sample.depth is not None:
                    depth.add_metric([label], sample.depth)
                    peak.add_metric([label], sample.peak or 0)
                    capacity.add_metric([label], sample.capacity or 0)
        return [restarts, up, depth, peak, capacity]


def _families() -> tuple[
    CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily
]:
    return (
        CounterMetricFamily(
            "actor_restarts", "Restarts of a supervision tree node by its parent.", labels=["child"]
        ),
        GaugeMetricFamily(
            "supervision_node_up", "1 while the node is running, else 0.", labels=["child"]
        ),
        GaugeMetricFamily(
            "mailbox_depth", "Messages waiting in an actor's mailbox.", labels=["child"]
        ),
        GaugeMetricFamily(
            "mailbox_depth_peak",
            "Highest mailbox depth since the mailbox was created.",
            labels=["child"],
        ),
        GaugeMetricFamily("mailbox_capacity", "Bound of an actor's mailbox.", labels=["child"]),
    )


def register_supervision_metrics(
    snapshot: RootSnapshot, registry: CollectorRegistry = REGISTRY
) -> SupervisionCollector:
    """Register a collector for the tree; unregister it when the tree is gone."""
    collector = SupervisionCollector(snapshot)
    registry.register(collector)
    return collector
