"""Rules and channels as the services check them: bad input names the field and saves
nothing; a good save is audited."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest

from scheduler.models import AlertChannel, AlertRule, AuditEntry
from scheduler.services import AlertNotFound, RuleInput, channel_save, rule_delete, rule_save
from scheduler.services.errors import ScheduleError
from tests.factories import make_agent, make_channel, make_rule

pytestmark = pytest.mark.django_db


def refused(**fields: Any) -> dict[str, list[str]]:
    data = RuleInput(**{"name": "r", "trigger": "failed", **fields})
    with pytest.raises(ScheduleError) as caught:
        rule_save(data, source="api")
    assert not AlertRule.objects.exists()
    return caught.value.errors


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"target_type": "schedule", "target": "ghost"},
            "target",
            "no periodic task named 'ghost'",
        ),
        ({"target_type": "task", "target": "nope.task"}, "target", "is not a task in the catalog"),
        ({"target_type": "agent", "target": "nobody"}, "target", "no agent with the slug"),
        ({"target_type": "tournament", "target": "999"}, "target", "no tournament"),
        ({"target_type": "planet", "target": "x"}, "target_type", "unknown target type 'planet'"),
        ({"target_type": "schedule"}, "target", "name the schedule"),
        ({"target": "x"}, "target", "a rule on everything takes no target"),
        ({"trigger": "sometimes"}, "trigger", "unknown trigger 'sometimes'"),
        ({"trigger": "consecutive_failures", "threshold": 0}, "threshold", "positive"),
        ({"trigger": "consecutive_failures", "threshold": -2}, "threshold", "positive"),
        ({"trigger": "consecutive_failures"}, "threshold", "whole number, not None"),
        ({"trigger": "long_run", "duration": 0}, "duration", "positive"),
        ({"trigger": "no_success", "duration": "1h"}, "duration", "whole number"),
        ({"trigger": "queue_depth", "threshold": 0}, "threshold", "positive"),
        (
            {
                "trigger": "no_worker",
                "duration": 5,
                "target_type": "task",
                "target": "scheduler.ping",
            },
            "target_type",
            "queues",
        ),
        (
            {
                "trigger": "beat_no_leader",
                "duration": 5,
                "target_type": "queue",
                "target": "default",
            },
            "target_type",
            "beat has no target",
        ),
        ({"target_type": "queue", "target": "default"}, "target_type", "queue triggers only"),
        (
            {"target_type": "queue", "target": "nowhere", "trigger": "no_worker", "duration": 5},
            "target",
            "no queue named 'nowhere'",
        ),
        ({"repeat_interval": -1}, "repeat_interval", "must be 0 (never)"),
        ({"quiet_start": time(22)}, "quiet_start", "both ends"),
        ({"quiet_timezone": "Mars/Base"}, "quiet_timezone", "unknown zone"),
        ({"channels": ["ghost"]}, "channels", "no channel named ghost"),
        ({"name": " "}, "name", "needs a name"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(
    fields: dict[str, Any], field: str, message: str
) -> None:
    errors = refused(**fields)
    assert field in errors, errors
    assert message in " ".join(errors[field])


def test_every_bad_field_is_named_at_once() -> None:
    errors = refused(trigger="consecutive_failures", threshold=0, channels=["ghost"])
    assert set(errors) == {"threshold", "channels"}


def test_a_rule_on_an_agent_keeps_the_id_its_runs_carry() -> None:
    agent = make_agent("Scout")
    make_channel()
    rule = make_rule(target_type="agent", target=agent.slug)
    assert (rule.target, rule.target_key) == (agent.slug, str(agent.pk))
    assert [c.name for c in rule.channels.all()] == ["ops"]


def test_saves_are_audited_and_updates_change_only_what_differs() -> None:
    make_channel()
    make_rule()
    rule_save(
        RuleInput(name="failures", trigger="failed", channels=["ops"], repeat_interval=60),
        source="cli",
    )
    entries = AuditEntry.objects.filter(periodic_task_name="rule failures").order_by("id")
    assert [entry.action for entry in entries] == ["created", "updated"]
    assert entries[1].changes == {"repeat_interval": [14400, 60]}
    rule_delete(name="failures", source="cli")
    with pytest.raises(AlertNotFound):
        rule_delete(name="failures", source="cli")


def test_create_only_refuses_an_existing_name() -> None:
    make_channel()
    make_rule()
    with pytest.raises(ScheduleError, match="a rule named 'failures' exists"):
        rule_save(RuleInput(name="failures", trigger="failed"), source="api", create=True)


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("pager", {}, "unknown channel kind 'pager'"),
        ("record", {"volume": 11}, "config: volume: unknown setting"),
        ("record", {"fail": "sometimes"}, "config: fail: retry or refuse"),
        ("record", ["not", "an", "object"], "config: must be a JSON object"),
    ],
)
def test_bad_channels_are_refused(kind: str, config: Any, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        channel_save(name="c", kind=kind, config=config, source="api")
    assert not AlertChannel.objects.exists()


def test_a_kind_that_cannot_be_loaded_is_named(settings: Any) -> None:
    settings.SCHEDULER_ALERT_CHANNEL_KINDS = {"broken": "tests.nowhere.Channel"}
    with pytest.raises(ScheduleError, match="channel kind 'broken' cannot be loaded"):
        channel_save(name="c", kind="broken", source="api")
