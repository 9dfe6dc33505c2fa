"""In-process subscriptions: glob patterns with the seed's aliases, handlers run after commit
(never for a rollback), a failing handler logged and skipped, and the worker's deferred writes
dispatching too."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest
from django.db import transaction

from scheduler.core.patterns import (
    PatternError,
    pattern_regex,
    pattern_valid,
    patterns_from_text,
    type_matches,
    types_matching,
)
from scheduler.live import publish, publisher, subscribe
from scheduler.live.events import defer_event_writes, event_record
from scheduler.live.subscriptions import dispatch, subscriptions
from scheduler.models import TaskEvent
from scheduler.protocol import EVENT_ALIASES, EventType
from tests.factories import event_payload_of

# --- patterns ------------------------------------------------------------------------------------

MATCHES = [
    ("task.*", "task.failed", True),
    ("task.*", "task.dead_letter", True),
    ("*.failed", "task.failed", True),
    ("task.?ailed", "task.failed", True),
    ("task.[!f]*", "task.failed", False),
    ("task.[!f]*", "task.started", True),
    ("task.[a-s]*", "task.queued", True),
    ("incident.*", "incident.opened", True),
    ("incident.*", "task.failed", False),
    ("my.custom.*", "my.custom.thing", True),
    ("my.custom.*", "my.customer", False),
    ("report.published", "report.published", True),
    ("report.published", "report.published.late", False),
    # The seed's names, as aliases of ours.
    ("task.completed", "task.succeeded", True),
    ("task.comp*", "task.succeeded", True),
    ("task.completed", "task.failed", False),
    ("task.created", "schedule.created", True),
    ("task.updated", "schedule.updated", True),
    ("task.updated", "schedule.disabled", True),
    ("task.updated", "schedule.deleted", False),
    # "task.*" is every seed name too: a schedule's creation was "task.created" there.
    ("task.*", "schedule.created", True),
    ("task.*", "schedule.deleted", False),
    # Our own names still match themselves.
    ("task.succeeded", "task.succeeded", True),
    ("schedule.*", "schedule.enabled", True),
]


@pytest.mark.parametrize(("pattern", "event_type", "expected"), MATCHES)
def test_a_pattern_matches_types_directly_and_through_the_seeds_aliases(
    pattern, event_type, expected
):
    assert type_matches(event_type, pattern, EVENT_ALIASES) is expected


@pytest.mark.parametrize(("pattern", "event_type", "_"), MATCHES)
def test_a_patterns_regex_for_the_database_agrees_with_the_glob(pattern, event_type, _):
    assert bool(re.search(pattern_regex(pattern), event_type)) is fnmatchcase(event_type, pattern)


@pytest.mark.parametrize("pattern", ["task.[]x]", "task.[!]]x", "a[b", "[[.]a", "x.-y*"])
def test_the_regex_of_odd_brackets_reads_them_as_fnmatch_does(pattern):
    for event_type in ("task.x", "task.]", "task.ax", "a[b", "[a", ".a", "x.-yz", "a.b"):
        got = bool(re.search(pattern_regex(pattern), event_type))
        assert got is fnmatchcase(event_type, pattern), (pattern, event_type)


def test_known_types_matching_patterns_include_the_aliased_ones():
    known = [str(kind) for kind in EventType]

    assert types_matching(["task.completed", "incident.*"], known, EVENT_ALIASES) == {
        "task.succeeded",
        "incident.opened",
        "incident.resolved",
    }


@pytest.mark.parametrize(
    "text", ["", "   ", "task failed", "task.*;drop", "täsk.*", "x" * 101, "task.{a,b}"]
)
def test_a_pattern_that_cannot_be_read_is_refused_naming_it(text):
    with pytest.raises(PatternError) as refused:
        pattern_valid(text)

    assert (repr(text) in str(refused.value)) or "required" in str(refused.value)


def test_patterns_are_read_comma_separated_and_in_any_case():
    assert patterns_from_text(" Task.Failed, incident.* ,") == ("task.failed", "incident.*")
    with pytest.raises(PatternError, match="'task failed'"):
        patterns_from_text("task.ok,task failed")


# --- subscribe and dispatch ----------------------------------------------------------------------


@pytest.fixture
def subscribed() -> Iterator[Any]:
    """subscribe() for one test: every subscription it makes is cancelled after."""
    cancels = []

    def make(pattern: str, handler: Any) -> Any:
        cancels.append(subscribe(pattern, handler))
        return cancels[-1]

    yield make
    for cancel in cancels:
        cancel()


def test_a_handler_gets_the_events_its_pattern_matches_until_it_unsubscribes(subscribed):
    got: list[str] = []
    unsubscribe = subscribed("task.*", lambda event: got.append(event["type"]))
    before = len(subscriptions())

    dispatch(event_payload_of(type="task.failed"))
    dispatch(event_payload_of(type="report.published"))
    dispatch(event_payload_of(type="schedule.created"))  # "task.created" in the seed
    unsubscribe()
    dispatch(event_payload_of(type="task.started"))

    assert got == ["task.failed", "schedule.created"]
    assert len(subscriptions()) == before - 1
    unsubscribe()  # twice is harmless


def test_a_bad_pattern_or_handler_is_refused():
    with pytest.raises(PatternError, match="'task failed'"):
        subscribe("task failed", print)
    with pytest.raises(TypeError, match="not callable"):
        subscribe("task.*", "print")  # type: ignore[arg-type]


def test_a_handler_that_raises_is_logged_and_the_others_still_run(subscribed, caplog):
    got: list[str] = []

    def broken(event: Any) -> None:
        raise RuntimeError("handler bug")

    subscribed("task.*", broken)
    subscribed("task.failed", lambda event: got.append(event["task_id"]))

    with caplog.at_level(logging.ERROR, logger="scheduler.live.subscriptions"):
        ran = dispatch(event_payload_of(type="task.failed", task_id="t1"))

    assert got == ["t1"]
    assert ran >= 1
    failures = [r for r in caplog.records if "failed on task.failed" in r.getMessage()]
    assert any(r.exc_info and "handler bug" in str(r.exc_info[1]) for r in failures)


@pytest.mark.django_db
def test_handlers_run_only_after_commit_and_a_failing_one_never_breaks_the_caller(
    subscribed, django_capture_on_commit_callbacks
):
    got: list[str] = []
    subscribed("task.completed", lambda event: got.append(event["task_id"]))
    subscribed("task.*", lambda event: 1 / 0)

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            event = event_record(type="task.succeeded", task_id="done", state="SUCCESS")
            assert got == []  # not before commit
        assert got == []

    assert got == ["done"]
    assert TaskEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_handlers_never_hear_of_a_rolled_back_event(subscribed, django_capture_on_commit_callbacks):
    got: list[str] = []
    subscribed("report.*", lambda event: got.append(event["type"]))

    def failing_change() -> None:
        with transaction.atomic():
            publish("report.published", {"rows": 1})
            raise RuntimeError("the change fails")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            failing_change()
        publish("report.retracted")

    assert got == ["report.retracted"]
    assert len(callbacks) == 1
    assert list(TaskEvent.objects.values_list("type", flat=True)) == ["report.retracted"]


@pytest.mark.django_db(transaction=True)
def test_deferred_writes_of_a_worker_dispatch_at_once_and_store_the_row_later(subscribed):
    got: list[Any] = []
    subscribed("task.completed", got.append)
    defer_event_writes()
    try:
        event_record(type="task.succeeded", task_id="deferred-1", state="SUCCESS")
    finally:
        defer_event_writes(False)

    assert [event["task_id"] for event in got] == ["deferred-1"]
    assert got[0]["id"] is None  # handed over before the publisher thread stored it
    assert publisher().flush(timeout=5)
    assert TaskEvent.objects.filter(task_id="deferred-1", type="task.succeeded").exists()


def test_a_subscription_made_or_cancelled_later_counts_for_the_next_event() -> None:
    seen: list[str] = []
    event = event_payload_of(type="tests.later.thing", task_id="t")
    dispatch(event)  # dispatched once before anyone subscribed

    cancel = subscribe("tests.later.*", lambda e: seen.append("first"))
    dispatch(event)
    cancel_second = subscribe("tests.*.thing", lambda e: seen.append("second"))
    dispatch(event)
    cancel()
    dispatch(event)
    cancel_second()
    dispatch(event)

    assert seen == ["first", "first", "second", "second"]
