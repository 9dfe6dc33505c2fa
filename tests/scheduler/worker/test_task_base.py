"""The overlap policy: a `skip` periodic task never runs twice at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.exceptions import Ignore
from django_celery_results.models import TaskResult

from scheduler.catalog import overlap_policy_of
from scheduler.core.redis_connection import get_redis
from scheduler.models import TaskEvent
from scheduler.system.tasks import ping
from scheduler.worker.task_base import SKIPPED, overlap_lock_key
from tests.factories import make_schedule

pytestmark = pytest.mark.django_db


@contextmanager
def as_run_of(periodic_task_name: str | None, task_id: str = "run-1") -> Iterator[None]:
    ping.push_request(id=task_id, periodic_task_name=periodic_task_name, hostname="w1@test")
    try:
        yield
    finally:
        ping.pop_request()


@contextmanager
def held(periodic_task_name: str) -> Iterator[None]:
    lock = get_redis().lock(overlap_lock_key(periodic_task_name), timeout=30)
    assert lock.acquire(blocking=False)
    try:
        yield
    finally:
        lock.release()


def test_it_skips_a_run_while_the_previous_run_holds_the_lock():
    make_schedule(name="slow report", overlap="skip")

    with held("slow report"), as_run_of("slow report", "run-2"), pytest.raises(Ignore):
        ping()

    row = TaskResult.objects.get(task_id="run-2")
    assert row.status == SKIPPED
    assert "still running" in row.result
    event = TaskEvent.objects.get(type="task.skipped")
    assert (event.task_id, event.periodic_task_name, event.worker) == (
        "run-2",
        "slow report",
        "w1@test",
    )


def test_it_runs_and_releases_the_lock_when_nothing_else_runs():
    make_schedule(name="solo", overlap="skip")

    with as_run_of("solo"):
        assert ping()["pong"] is True
    with as_run_of("solo", "run-3"):
        assert ping()["pong"] is True

    assert get_redis().get(overlap_lock_key("solo")) is None


def test_it_lets_runs_overlap_when_the_policy_allows_it():
    make_schedule(name="parallel", overlap="allow")

    with held("parallel"), as_run_of("parallel"):
        assert ping()["pong"] is True


def test_it_ignores_the_lock_for_runs_not_sent_for_a_periodic_task():
    with held("whatever"), as_run_of(None):
        assert ping()["pong"] is True


def test_a_periodic_task_without_options_takes_its_catalog_default():
    assert overlap_policy_of("made by hand", "scheduler.ping") == "allow"
    assert overlap_policy_of("made by hand", "not.in.catalog") == "allow"
