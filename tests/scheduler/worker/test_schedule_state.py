# mypy: disable-error-code="attr-defined"
# (celery-types stubs TaskResult without the extended columns read here)
"""A periodic task's state row says what its history says, whatever order the writes come in."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from celery import states
from celery.app.task import Context
from django.utils import timezone
from django_celery_results.models import TaskResult

from config.celery import app
from scheduler.models import ScheduleState
from scheduler.worker.result_backend import DatabaseBackend
from scheduler.worker.schedule_state import schedule_states_rebuild
from scheduler.worker.task_base import SKIPPED

NAME = "nightly report"


def _store(task_id: str, state: str, *, result: Any = None, name: str = NAME) -> None:
    request = Context(
        id=task_id,
        task="scheduler.ping",
        args=[],
        kwargs={},
        hostname="worker@test",
        periodic_task_name=name,
    )
    if state == states.FAILURE:
        result = ValueError("boom")
    DatabaseBackend(app=app).store_result(task_id, result, state, request=request)


def _history_says(name: str = NAME) -> dict[str, Any] | None:
    """The latest run of `name` in the history: created last, as TaskResult orders them."""
    latest = (
        TaskResult.objects.filter(periodic_task_name=name).order_by("-date_created", "-id").first()
    )
    if latest is None:
        return None
    return {
        "task_id": latest.task_id,
        "result_id": latest.pk,
        "status": latest.status,
        "created_at": latest.date_created,
        "started_at": latest.date_started,
        "done_at": latest.date_done,
    }


def _state_says(name: str = NAME) -> dict[str, Any] | None:
    state = ScheduleState.objects.filter(periodic_task_name=name).first()
    if state is None:
        return None
    return {
        "task_id": state.task_id,
        "result_id": state.result_id,
        "status": state.status,
        "created_at": state.created_at,
        "started_at": state.started_at,
        "done_at": state.done_at,
    }


def _run(*steps: str) -> str:
    """One run through `steps` (states), a clock tick apart; its task id."""
    task_id = str(uuid.uuid4())
    for state in steps:
        _store(task_id, state)
    return task_id


Scenario = Callable[[time_machine.Coordinates], str]


def succeeds(clock: time_machine.Coordinates) -> str:
    return _run(states.STARTED, states.SUCCESS)


def fails(clock: time_machine.Coordinates) -> str:
    _run(states.STARTED, states.SUCCESS)
    clock.shift(60)
    return _run(states.STARTED, states.FAILURE)


def is_retried_then_succeeds(clock: time_machine.Coordinates) -> str:
    task_id = str(uuid.uuid4())
    _store(task_id, states.STARTED)
    clock.shift(1)
    _store(task_id, states.RETRY)
    clock.shift(5)
    _store(task_id, states.STARTED)
    clock.shift(1)
    _store(task_id, states.SUCCESS)
    return task_id


def is_revoked(clock: time_machine.Coordinates) -> str:
    _run(states.SUCCESS)
    clock.shift(60)
    return _run(states.REVOKED)


def is_skipped(clock: time_machine.Coordinates) -> str:
    _run(states.STARTED, states.SUCCESS)
    clock.shift(60)
    return _run(SKIPPED)


def gets_a_late_started_after_success(clock: time_machine.Coordinates) -> str:
    task_id = _run(states.STARTED, states.SUCCESS)
    clock.shift(1)
    _store(task_id, states.STARTED)  # a redelivered copy's start: the result stays SUCCESS
    return task_id


def gets_a_late_started_after_failure(clock: time_machine.Coordinates) -> str:
    task_id = _run(states.STARTED, states.FAILURE)
    clock.shift(1)
    _store(task_id, states.STARTED)
    return task_id


def ends_after_a_newer_run_started(clock: time_machine.Coordinates) -> str:
    older = str(uuid.uuid4())
    _store(older, states.STARTED)
    clock.shift(60)
    newer = _run(states.STARTED)
    clock.shift(30)
    _store(older, states.SUCCESS)  # the older run ends last: the newer one is still the latest
    return newer


def is_running(clock: time_machine.Coordinates) -> str:
    _run(states.STARTED, states.SUCCESS)
    clock.shift(60)
    return _run(states.STARTED)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "scenario",
    [
        succeeds,
        fails,
        is_retried_then_succeeds,
        is_revoked,
        is_skipped,
        gets_a_late_started_after_success,
        gets_a_late_started_after_failure,
        ends_after_a_newer_run_started,
        is_running,
    ],
)
def test_it_equals_the_history_after_a_run_that(scenario: Scenario) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        latest = scenario(clock)

    said = _state_says()
    assert said == _history_says()
    assert said is not None
    assert said["task_id"] == latest


@pytest.mark.django_db
def test_it_keeps_success_when_a_redelivered_copy_starts_again() -> None:
    task_id = _run(states.STARTED, states.SUCCESS)
    _store(task_id, states.STARTED)

    state = ScheduleState.objects.get()
    assert state.status == states.SUCCESS
    assert state.started_at is not None
    assert state.done_at is not None


@pytest.mark.django_db
def test_it_keeps_one_row_per_periodic_task_and_none_for_other_runs() -> None:
    _run(states.SUCCESS)
    _store(str(uuid.uuid4()), states.SUCCESS, name="other schedule")
    DatabaseBackend(app=app).store_result(
        str(uuid.uuid4()), 1, states.SUCCESS, request=Context(id="x", task="scheduler.ping")
    )

    assert sorted(ScheduleState.objects.values_list("periodic_task_name", flat=True)) == [
        "nightly report",
        "other schedule",
    ]


@pytest.mark.django_db
def test_it_is_rebuilt_to_the_previous_run_when_retention_deletes_the_latest() -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        first = _run(states.STARTED, states.SUCCESS)
        clock.shift(60)
        second = _run(states.STARTED, states.FAILURE)

    TaskResult.objects.filter(task_id=second).delete()
    assert schedule_states_rebuild(names=[NAME]) == 1

    assert _state_says() == _history_says()
    assert ScheduleState.objects.get().task_id == first


@pytest.mark.django_db
def test_it_is_removed_when_retention_deletes_every_run() -> None:
    _run(states.SUCCESS)
    TaskResult.objects.all().delete()

    assert schedule_states_rebuild(names=[NAME]) == 1

    assert not ScheduleState.objects.exists()


@pytest.mark.django_db
def test_a_full_rebuild_finds_every_name_in_the_history() -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _run(states.SUCCESS)
        clock.shift(60)
        _store(str(uuid.uuid4()), states.FAILURE, name="other schedule")
    ScheduleState.objects.all().delete()
    ScheduleState.objects.create(
        periodic_task_name="gone",
        task_id="x",
        result_id=0,
        status=states.SUCCESS,
        created_at=timezone.now() - timedelta(days=90),
    )

    schedule_states_rebuild()

    assert _state_says() == _history_says()
    assert _state_says("other schedule") == _history_says("other schedule")
    assert not ScheduleState.objects.filter(periodic_task_name="gone").exists()


@pytest.mark.django_db
def test_a_run_created_in_the_same_instant_as_a_rebuilt_state_moves_it_on() -> None:
    # The rebuild writes its times as the ORM does: on SQLite a "+00:00" suffix made them text
    # that no later run's time was equal to, and the tie went to the older run.
    with time_machine.travel(timezone.now(), tick=False):
        _run(states.SUCCESS)
        schedule_states_rebuild(names=[NAME])
        latest = _run(states.SUCCESS)

    said = _state_says()
    assert said == _history_says()
    assert said is not None
    assert said["task_id"] == latest
