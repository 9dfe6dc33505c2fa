"""The event publisher: one background thread and one channel layer per process."""

from __future__ import annotations

from scheduler.live.publisher import STAFF_GROUP, groups_for, object_group, publisher, task_group
from tests.factories import event_payload_of

TIMEOUT = 5


def test_the_publisher_delivers_in_the_background_over_one_layer():
    events = publisher()
    before = events.sent
    for n in range(20):
        events.publish(event_payload_of(type="task.started", task_id=f"x{n}", state="STARTED"))

    assert events.flush(timeout=TIMEOUT)
    assert events.sent - before == 20


def test_it_sends_an_event_to_staff_its_object_and_the_waiters_of_a_finished_task():
    groups = groups_for(event_payload_of(task_id="abc", state="SUCCESS", object=("tournament", 3)))

    assert groups == [STAFF_GROUP, "events.tournament.3", "task.abc"]
    assert groups_for(event_payload_of(task_id="abc", state="STARTED")) == [STAFF_GROUP]


def test_group_names_stay_valid_for_any_id():
    assert task_group("a b/c" * 40).startswith("task.a_b_c")
    assert len(task_group("x" * 300)) < 100
    assert object_group("tour nament", "1:2") == "events.tour_nament.1_2"
