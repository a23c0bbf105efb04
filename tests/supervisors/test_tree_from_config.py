"""Configuration of the ``[supervision]`` section, the builder, and snapshots."""

from __future__ import annotations

import json
import re

import cattrs
import pytest
import trio
import trio.testing

from notifactor.actors import ActorRef
from notifactor.supervisors import (
    DynamicSubtreeConfig,
    SubtreeConfig,
    SupervisionConfig,
    actor_spec,
    dynamic_supervisor_from_config,
    render_tree,
    supervisor_from_config,
    to_jsonable,
)

from ..actors.counter import Counter, CounterMsg, Explode, Get, Increment
from .probe import Probe


def test_defaults_are_valid() -> None:
    config = SupervisionConfig()
    assert config.root.strategy == "rest_for_one"
    assert config.sessions.child_restart == "temporary"
    assert config.consumers.max_children >= config.partitions


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"strategy": "one_for_some"}, "must be one of one_for_one, one_for_all, rest_for_one"),
        ({"intensity": -1}, "must be >= 0"),
        ({"period_s": 0}, "must be > 0"),
        ({"backoff_jitter": 1.5}, "must be between 0 and 1"),
        ({"backoff_min_s": 5, "backoff_max_s": 1}, "backoff_min_s must be <= backoff_max_s"),
        ({"mailbox_size": 0}, "must be > 0"),
        ({"shutdown_s": "soon"}, "must be a number"),
        ({"intensity": True}, "must be a number"),
    ],
)
def test_bad_subtree_values_raise_value_errors_with_a_reason(
    kwargs: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        SubtreeConfig(**kwargs)  # type: ignore[arg-type]


def test_dynamic_subtree_and_top_level_checks() -> None:
    with pytest.raises(ValueError, match="must be one of permanent, transient, temporary"):
        DynamicSubtreeConfig(child_restart="sometimes")
    with pytest.raises(ValueError, match="must be > 0"):
        DynamicSubtreeConfig(max_children=0)
    with pytest.raises(ValueError, match=re.escape("must be <= consumers.max_children")):
        SupervisionConfig(partitions=8, consumers=DynamicSubtreeConfig(max_children=4))


def test_structures_from_toml_and_environment_strings_with_cattrs() -> None:
    raw = {
        "partitions": "4",
        "writers": {"strategy": "one_for_all", "intensity": "5", "period_s": "10"},
        "sessions": {"max_children": 2000, "backoff_jitter": "0.5"},
    }
    config = cattrs.Converter().structure(raw, SupervisionConfig)
    assert config.partitions == 4
    assert config.writers.intensity == 5
    assert config.writers.strategy == "one_for_all"
    assert config.sessions.max_children == 2000
    assert config.sessions.child_restart == "temporary"  # the pool's own default
    assert config.gateway == SubtreeConfig()


async def test_builder_applies_the_knobs(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    config = SubtreeConfig(
        strategy="rest_for_one", intensity=0, backoff_min_s=0, backoff_max_s=0, shutdown_s=1.5
    )
    sup = supervisor_from_config(
        "writers", config, [probe.spec("a"), probe.spec("b", ignore_stop=True)]
    )
    assert sup.strategy == "rest_for_one"
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        began = trio.current_time()
        sup.request_stop()
    assert trio.current_time() == began + 1.5  # shutdown_s is the default budget

    pool = dynamic_supervisor_from_config(
        "sessions", DynamicSubtreeConfig(max_children=7, child_restart="temporary")
    )
    assert pool.max_children == 7


async def test_statistics_render_as_text_and_json(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    config = SupervisionConfig()
    ref = ActorRef[CounterMsg]("writer-0", mailbox_size=config.writers.mailbox_size)
    writers = supervisor_from_config("writers", config.writers, [actor_spec(ref, Counter)])
    sessions = dynamic_supervisor_from_config("sessions", config.sessions)
    root = supervisor_from_config(
        "root", config.root, [probe.spec("redis"), writers.child_spec(), sessions.child_spec()]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await sessions.start_child(probe.spec("ws-1"))
        ref.tell_nowait(Explode())
        ref.tell_nowait(Increment())
        assert await ref.ask(lambda reply: Get(reply=reply)) == 1  # restarted, queue kept

        snapshot = root.statistics()
        text = render_tree(snapshot)
        lines = text.splitlines()
        assert lines[0].startswith("root [supervisor] running rest_for_one")
        assert any("└── sessions [dynamic_supervisor] running" in ln for ln in lines)
        assert any("writer-0 [actor] running restarts=1 mailbox=0/1024" in ln for ln in lines)
        assert "last_crash='RuntimeError: exploded'" in text

        data = to_jsonable(snapshot)
        json.dumps(data)  # JSON-able
        writer = data["children"][1]["children"][0]
        assert writer["id"] == "writer-0"
        assert writer["restarts"] == 1
        assert writer["last_crash"]["type"] == "builtins.RuntimeError"
        assert writer["mailbox"]["peak"] >= 1
        assert data["children"][2]["children"][0]["id"] == "ws-1"

        paths = ["/".join(path) for path, _ in snapshot.walk()]
        assert paths == [
            "root",
            "root/redis",
            "root/writers",
            "root/writers/writer-0",
            "root/sessions",
            "root/sessions/ws-1",
        ]
        root.request_stop()
