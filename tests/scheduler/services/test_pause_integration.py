"""Pauses with a real worker: the watcher thread in the worker resumes a pause whose end passed,
and a schedule of `scheduler.flaky` pauses itself in the worker after N failed runs in a row
(its note, its event, its incident), a success in between starting the count again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import states
from django_celery_results.models import TaskResult

from scheduler.models import AuditEntry, Incident, ScheduleOptions, TaskEvent
from scheduler.schedules import pause_of
from scheduler.services import (
    schedule_create,
    schedule_get,
    schedule_pause,
    schedule_pause_on_failure,
    schedule_run_now,
)
from scheduler.services.incidents import rules_reload
from tests.factories import make_channel, make_rule
from tests.processes import RunningProcess, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(run_dir: Path) -> Iterator[RunningProcess]:
    """A worker of its own (rules it read in another test would be cached for a few seconds)
    that looks for ended pauses every 0.2 s, and runs one task at a time."""
    rules_reload()
    running = start_worker(
        log_dir=run_dir,
        concurrency=1,
        env={"SCHEDULE_RESUME_INTERVAL": "0.2", "ALERTS_WATCH_INTERVAL": "0"},
    )
    try:
        yield running
    finally:
        running.stop()


def test_the_worker_resumes_a_pause_when_its_end_passes(worker: RunningProcess) -> None:
    schedule_create(name="brief pause", task="scheduler.ping", schedule="every 1 hour")
    schedule_pause(name="brief pause", note="a second", until="1s")

    wait_for(
        lambda: schedule_get("brief pause").enabled,
        timeout=30,
        what=f"the worker to resume it\nworker log:\n{worker.log()}",
    )

    assert pause_of(schedule_get("brief pause")) is None
    entry = AuditEntry.objects.get(action="resumed")
    assert (entry.source, entry.actor) == ("system", None)
    assert TaskEvent.objects.filter(
        type="schedule.resumed", periodic_task_name="brief pause"
    ).exists()


def _run(name: str, *, streak: int, worker: RunningProcess) -> str:
    """One run of `name` now, waited for, and its end counted (the streak it leaves)."""
    task_id = schedule_run_now(name=name)
    wait_for(
        lambda: TaskResult.objects.filter(task_id=task_id, status__in=states.READY_STATES).exists(),
        timeout=30,
        what=f"run {task_id} to end\nworker log:\n{worker.log()}",
    )
    wait_for(
        lambda: ScheduleOptions.objects.get(periodic_task__name=name).failure_streak == streak,
        timeout=10,
        what=f"the streak of {name!r} to be {streak}\nworker log:\n{worker.log()}",
    )
    return str(TaskResult.objects.get(task_id=task_id).status)


def test_it_pauses_itself_in_the_worker_after_n_failures_in_a_row(worker: RunningProcess) -> None:
    name = f"flaky {uuid.uuid4().hex[:8]}"  # its own turn counter in Redis
    schedule_create(
        name=name, task="scheduler.flaky", schedule="every 1 hour", params={"pattern": "FSFFS"}
    )
    schedule_pause_on_failure(name=name, after=2)
    make_channel("signal", kind="signal")
    rule = make_rule("flaky failures", "failed", channels=("signal",))

    outcomes = [
        _run(name, streak=1, worker=worker),
        _run(name, streak=0, worker=worker),  # a success: the count starts again
        _run(name, streak=1, worker=worker),
    ]
    assert schedule_get(name).enabled
    outcomes.append(_run(name, streak=2, worker=worker))

    assert outcomes == ["FAILURE", "SUCCESS", "FAILURE", "FAILURE"]
    wait_for(
        lambda: not schedule_get(name).enabled,
        timeout=10,
        what=f"{name!r} to pause itself\nworker log:\n{worker.log()}",
    )
    pause = pause_of(schedule_get(name))
    assert pause is not None
    assert (pause.by, pause.note, pause.until) == (
        None,
        "paused after 2 failed runs in a row",
        None,
    )
    event = TaskEvent.objects.get(type="schedule.paused", periodic_task_name=name)
    assert event.payload["source"] == "system"
    incident = Incident.objects.get(rule=rule, subject=f"paused:{name}")
    assert incident.title == f"schedule {name!r} paused after 2 failed runs in a row"
    assert incident.resolved_at is None
