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
largest. So the series are bounded by the static shape of the tree. The
folded members have no ``supervision_node_up``: sessions and consumers start
and stop as part of normal work, so, as for ``/health``, the pool's own
series says whether they are served.

``actor_restarts_total`` is monotonic for the life of the process: the tree
counts restarts per bookkeeping record, and a record is created anew when a
subtree restarts (its supervisor builds new children) or a pool member comes
and goes, so its raw count can fall. The collector remembers, per node, the
record and count it saw last and adds only what is new to the label's total.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

import attrs
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notifactor.supervisors.statistics import NodeStatistics

RootSnapshot = Callable[[], NodeStatistics | None]


@attrs.define
class NodeSample:
    """What one (possibly aggregated) ``child`` label reports.

    ``restarts`` is the tree's raw count (summed over folded members); the
    collector turns it into a monotonic counter.
    """

    restarts: int = 0
    running: bool = True
    member: bool = False
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


@attrs.frozen
class LabelledNode:
    """A node of a snapshot with its own path and its (possibly folded) label.

    ``member``: the node belongs to a dynamic pool (it, or an ancestor, is
    a pool member), so it comes and goes with the work.
    """

    path: str
    label: str
    member: bool
    node: NodeStatistics


def bounded_samples(root: NodeStatistics) -> dict[str, NodeSample]:
    """Samples by ``child`` label, dynamic supervisors' children folded into ``…/*``."""
    samples: dict[str, NodeSample] = {}
    for item in labelled_nodes(root):
        samples.setdefault(item.label, NodeSample(member=item.member)).add(item.node)
    return samples


def labelled_nodes(root: NodeStatistics) -> Iterator[LabelledNode]:
    """Every node of ``root`` with its path and its label, depth first."""
    return _labelled(root, (), (), in_pool=False, member=False)


def _labelled(
    node: NodeStatistics,
    parent: tuple[str, ...],
    parent_label: tuple[str, ...],
    *,
    in_pool: bool,
    member: bool,
) -> Iterator[LabelledNode]:
    path = (*parent, node.id)
    label = (*parent_label, "*" if in_pool else node.id)
    yield LabelledNode("/".join(path), "/".join(label), member, node)
    pool = node.kind == "dynamic_supervisor"
    for child in node.children:
        yield from _labelled(child, path, label, in_pool=pool, member=member or pool)


@attrs.define
class RestartTotals:
    """``actor_restarts_total`` per label: what the tree counted, never decreasing.

    Per node path it keeps the bookkeeping record and the count seen last;
    a node seen again on the same record adds its increase, a node on a new
    record (a restarted subtree, a new pool member) adds its whole count.
    Nodes of the static shape are remembered for the life of the process
    (bounded by that shape); pool members only while they exist.
    """

    totals: dict[str, int] = attrs.Factory(dict)
    _static: dict[str, tuple[int, int]] = attrs.Factory(dict)
    _members: dict[str, tuple[int, int]] = attrs.Factory(dict)

    def update(self, root: NodeStatistics) -> dict[str, int]:
        """Take in a snapshot; the total of each label present in it."""
        members: dict[str, tuple[int, int]] = {}
        present: dict[str, int] = {}
        for item in labelled_nodes(root):
            seen = self._members if item.member else self._static
            before = seen.get(item.path)
            now = (item.node.record, item.node.restarts)
            new = now[1] if before is None or before[0] != now[0] else max(0, now[1] - before[1])
            total = self.totals.get(item.label, 0) + new
            self.totals[item.label] = present[item.label] = total
            if item.member:
                members[item.path] = now
            else:
                self._static[item.path] = now
        self._members = members
        return present


class SupervisionCollector(Collector):
    """A prometheus collector over a tree snapshot function (None: no tree yet)."""

    def __init__(self, snapshot: RootSnapshot) -> None:
        self._snapshot = snapshot
        self._restarts = RestartTotals()
        self._lock = threading.Lock()  # a scrape may come from any thread

    def describe(self) -> Iterable[Metric]:
        # Declared without samples so registering never calls the snapshot.
        return list(_families())

    def collect(self) -> Iterable[Metric]:
        restarts, up, depth, peak, capacity = _families()
        root = self._snapshot()
        if root is not None:
            with self._lock:
                totals = self._restarts.update(root)
            for label, sample in sorted(bounded_samples(root).items()):
                restarts.add_metric([label], totals[label])
                if not sample.member:
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
