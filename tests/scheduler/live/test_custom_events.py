"""`publish`: an app's own event, stored and handed on like ours, or refused naming what is
wrong with nothing recorded."""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler.live import PublishError, event_level, publish, subscribe
from scheduler.live.custom_events import DATA_MAX_BYTES, RESERVED_PREFIXES
from scheduler.models import TaskEvent
from scheduler.protocol import EVENT_ALIASES, EventType

pytestmark = pytest.mark.django_db


class EventPriority(enum.Enum):
    """The seed's priorities, as an app ported from it still passes them."""

    LOW = 1
    HIGH = 3


def test_it_stores_a_custom_event_with_its_data_source_and_priority():
    event = publish(
        "My.Custom.Event",
        {"message": "Hello from Celery!", "count": 2},
        source="my_app",
        priority="HIGH",
        object=("tournament", 7),
    )

    row = TaskEvent.objects.get(pk=event.pk)
    assert row.type == "my.custom.event"
    assert row.payload == {
        "data": {"message": "Hello from Celery!", "count": 2},
        "source": "my_app",
        "priority": "high",
    }
    assert row.message == "my_app: Hello from Celery!"
    assert (row.object_type, row.object_id) == ("tournament", "7")
    assert (row.task_id, row.state) == ("", "")
    assert event_level(row.type) == "INFO"


@pytest.mark.parametrize(
    ("data", "source", "message"),
    [
        (None, "", "report.published"),
        (None, "reports", "reports"),
        ({"rows": 3}, "", '{"rows": 3}'),
        ([1, 2], "reports", "reports: [1, 2]"),
        ("x" * 300, "", "x" * 199 + "…"),
    ],
)
def test_its_log_line_says_who_published_it_and_what(data, source, message):
    event = publish("report.published", data, source=source)

    assert event.message == message
    assert event.payload["priority"] == "normal"


def test_the_seeds_priority_enum_is_read_by_its_name():
    assert publish("report.published", priority=EventPriority.HIGH).payload["priority"] == "high"


def test_subscribers_hear_of_it_after_commit(django_capture_on_commit_callbacks):
    got: list[Any] = []
    unsubscribe = subscribe("report.*", got.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            publish("report.published", {"rows": 3}, source="reports")
            assert got == []
    finally:
        unsubscribe()

    assert [event["type"] for event in got] == ["report.published"]
    assert got[0]["data"] == {"data": {"rows": 3}, "source": "reports", "priority": "normal"}
    assert got[0]["id"] is not None


def test_every_type_of_ours_is_under_a_reserved_prefix():
    # The backfill reads a glob under these from EventType alone (scheduler/live/backlog.py).
    for kind in [*EventType, *EVENT_ALIASES]:
        assert kind.startswith(RESERVED_PREFIXES), kind


REFUSALS = [
    pytest.param({"event_type": ""}, "an event type is required", id="no type"),
    pytest.param({"event_type": "report"}, "dotted words", id="one word"),
    pytest.param({"event_type": "report published"}, "'report published'", id="space"),
    pytest.param({"event_type": "report.*"}, "dotted words", id="a pattern, not a type"),
    pytest.param({"event_type": "r." + "x" * 40}, "longer than 40", id="too long"),
    pytest.param({"event_type": 7}, "must be a string", id="not a string"),
    pytest.param({"event_type": "task.completed"}, "scheduler's own", id="task prefix"),
    pytest.param({"event_type": "Schedule.Created"}, "scheduler's own", id="schedule prefix"),
    pytest.param({"event_type": "incident.opened"}, "scheduler's own", id="incident prefix"),
    pytest.param({"data": {"at": datetime(2026, 1, 1, tzinfo=UTC)}}, "JSON", id="a datetime"),
    pytest.param({"data": {1, 2}}, "JSON-serialisable", id="a set"),
    pytest.param({"data": math.nan}, "JSON-serialisable", id="NaN"),
    pytest.param({"data": "x" * DATA_MAX_BYTES}, f"over {DATA_MAX_BYTES}", id="too big"),
    pytest.param({"priority": "urgent"}, "low, normal, high, critical", id="unknown priority"),
    pytest.param({"priority": None}, "not None", id="no priority"),
    pytest.param({"source": 3}, "source must be a string", id="source not a string"),
    pytest.param({"source": "s" * 101}, "at most 100", id="source too long"),
    pytest.param({"object": "tournament:7"}, "(type, id) pair", id="object not a pair"),
    pytest.param({"object": ("Tournament", 7)}, "'Tournament'", id="object type"),
    pytest.param({"object": ("tournament", "")}, "object id", id="object without id"),
]


@pytest.mark.parametrize(("arguments", "named"), REFUSALS)
def test_a_bad_argument_is_refused_naming_it_and_nothing_is_recorded(arguments, named):
    call = {"event_type": "report.published", **arguments}

    with pytest.raises(PublishError) as refused:
        publish(call.pop("event_type"), **call)

    assert named in str(refused.value)
    assert not TaskEvent.objects.exists()
