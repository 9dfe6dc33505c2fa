"""Overlap policies across two real worker processes and the real Redis and database.

Each test runs a periodic task of `scheduler.sleep` with one policy and overlaps its slow first
run three times: four runs are published the way beat publishes them (the `periodic_task_name`
header), each once the one before has been dealt with (it holds the lock, is buffered or is
skipped), so the order is the test's, not the broker's. Then the exact set of runs made, their
order, their stored states and the events that say why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django_celery_results.models import TaskResult

from config.celery import app
from scheduler.models import TaskEvent
from scheduler.protocol import BUFFERED, FINISHED_STATES
from scheduler.system.tasks import sleep
from scheduler.worker.overlap import overlap_buffered, overlap_holder
from tests.factories import make_schedule
from tests.processes import RunningProcess, start_workers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The first run's length: long enough for the three overlapping runs to be published and dealt
# with while it runs (each takes a worker's pickup, well under a second).
SLOW = 4.0
# Runs that are stopped by the next one (cancel_other, terminate_other) would sleep this long.
STOPPED = 8.0
QUICK = 0.3
WAIT = 30.0


@pytest.fixture(scope="module")
def two_workers(
    django_db_setup: None, django_db_blocker: object, run_dir: Path
) -> Iterator[list[RunningProcess]]:
    """Two worker processes on the default queue (where `scheduler.sleep` runs), two pool
    processes each, started side by side."""
    workers = start_workers(count=2, log_dir=run_dir, queues=["default"], concurrency=2)
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        # Nothing a failed test left behind reaches the next module's workers.
        with app.connection_for_write() as connection:
            channel: Any = connection.default_channel
            channel.queue_purge("default")


class Runs:
    """The four runs of one periodic task, published one by one."""

    def __init__(self, policy: str) -> None:
        self.name = f"overlap {policy} {uuid.uuid4().hex[:6]}"
        make_schedule(name=self.name, task="scheduler.sleep", overlap=policy)
        self.ids = [f"{policy}-{n}-{uuid.uuid4().hex[:6]}" for n in range(1, 5)]

    def publish(self, n: int, seconds: float, *, then: Callable[[str], bool], what: str) -> None:
        run_id = self.ids[n - 1]
        sleep.apply_async(
            kwargs={"seconds": seconds}, task_id=run_id, headers={"periodic_task_name": self.name}
        )
        wait_for(lambda: then(run_id), timeout=WAIT, what=f"run {n} {what}")

    def holds(self, run_id: str) -> bool:
        return overlap_holder(self.name) == run_id

    def runs(self, run_id: str) -> bool:
        """It holds the lock and its STARTED row is stored: its body is running."""
        return self.holds(run_id) and self.states().get(run_id) == "STARTED"

    def buffered(self, run_id: str) -> bool:
        return run_id in [run["id"] for run in overlap_buffered(self.name)]

    def stored(self, state: str) -> Callable[[str], bool]:
        return lambda run_id: self.states().get(run_id) == state

    def states(self) -> dict[str, str]:
        rows = TaskResult.objects.filter(periodic_task_name=self.name)
        return dict(rows.values_list("task_id", "status"))

    def wait_until_all_finished(self) -> dict[int, str]:
        """The final state of each run, by its number."""

        def finished() -> bool:
            states = self.states()
            return len(states) == 4 and set(states.values()) <= FINISHED_STATES

        wait_for(finished, timeout=WAIT, what=f"the runs of {self.name!r} to finish")
        return {self.ids.index(run_id) + 1: state for run_id, state in self.states().items()}

    def started_in_order(self, *numbers: int) -> list[int]:
        rows = TaskResult.objects.filter(task_id__in=[self.ids[n - 1] for n in numbers])
        started = dict(rows.values_list("task_id", "date_started"))
        return sorted(numbers, key=lambda n: started[self.ids[n - 1]])

    def events(self, kind: str, count: int) -> list[tuple[int, str]]:
        """The `kind` events of these runs, in order: (run number, message)."""

        def rows() -> list[Any]:
            found = TaskEvent.objects.filter(periodic_task_name=self.name, type=kind)
            return list(found.order_by("created_at", "id"))

        wait_for(lambda: len(rows()) >= count, timeout=WAIT, what=f"{count} {kind} events")
        return [(self.ids.index(event.task_id) + 1, event.message) for event in rows()]

    def error(self, n: int) -> str:
        return TaskResult.objects.get(task_id=self.ids[n - 1]).result or ""


def test_buffer_one_runs_one_overlapping_run_after_the_first_and_skips_the_others(two_workers):
    runs = Runs("buffer_one")

    runs.publish(1, SLOW, then=runs.runs, what="to run")
    runs.publish(2, QUICK, then=runs.buffered, what="to be buffered")
    # What publishing it again takes: its task, arguments, queue and its own headers.
    [kept] = overlap_buffered(runs.name)
    # (When it was first published stays with it: its dispatch lag counts the wait.)
    assert kept["headers"].pop("published_at")
    assert kept["headers"] == {"periodic_task_name": runs.name}
    assert (kept["task"], kept["kwargs"], kept["queue"]) == (
        "scheduler.sleep",
        {"seconds": QUICK},
        "default",
    )
    runs.publish(3, QUICK, then=runs.stored("SKIPPED"), what="to be skipped")
    runs.publish(4, QUICK, then=runs.stored("SKIPPED"), what="to be skipped")
    assert runs.holds(runs.ids[0]), "run 1 ended before the others were dealt with"

    states = runs.wait_until_all_finished()
    assert states == {1: "SUCCESS", 2: "SUCCESS", 3: "SKIPPED", 4: "SKIPPED"}
    assert runs.started_in_order(1, 2) == [1, 2]
    [(buffered, message)] = runs.events("task.buffered", 1)
    assert buffered == 2
    assert message == f"buffered (buffer_one): runs after run {runs.ids[0]} ends"
    skipped = runs.events("task.skipped", 2)
    assert [n for n, _ in skipped] == [3, 4]
    assert all("one run is buffered already" in message for _, message in skipped)
    assert overlap_holder(runs.name) is None


def test_buffer_all_runs_every_overlapping_run_in_order(two_workers):
    runs = Runs("buffer_all")

    runs.publish(1, SLOW, then=runs.runs, what="to run")
    for n in (2, 3, 4):
        runs.publish(n, QUICK, then=runs.buffered, what="to be buffered")
    assert runs.holds(runs.ids[0]), "run 1 ended before the others were dealt with"
    assert runs.states()[runs.ids[3]] == BUFFERED

    states = runs.wait_until_all_finished()
    assert states == {1: "SUCCESS", 2: "SUCCESS", 3: "SUCCESS", 4: "SUCCESS"}
    assert runs.started_in_order(1, 2, 3, 4) == [1, 2, 3, 4]
    buffered = runs.events("task.buffered", 3)
    assert [n for n, _ in buffered] == [2, 3, 4]
    assert [message.rsplit(", ", 1)[-1] for _, message in buffered][1:] == [
        "1 buffered run ahead of it",
        "2 buffered runs ahead of it",
    ]
    # Each buffered run went out again when its turn came, under its own id.
    assert [n for n, _ in runs.events("task.queued", 7)].count(4) == 2
    assert overlap_holder(runs.name) is None
    assert overlap_buffered(runs.name) == []


def test_cancel_other_cancels_the_running_run_and_starts_once_it_stopped(two_workers):
    runs = Runs("cancel_other")

    runs.publish(1, STOPPED, then=runs.runs, what="to run")
    for n in (2, 3):
        runs.publish(n, STOPPED, then=runs.runs, what="to cancel the run before it and start")
    runs.publish(4, QUICK, then=runs.stored("SUCCESS"), what="to cancel run 3 and succeed")

    states = runs.wait_until_all_finished()
    assert states == {1: "REVOKED", 2: "REVOKED", 3: "REVOKED", 4: "SUCCESS"}
    assert runs.started_in_order(1, 2, 3, 4) == [1, 2, 3, 4]
    cancelled = runs.events("task.cancelled", 3)
    assert [n for n, _ in cancelled] == [1, 2, 3]
    for n, message in cancelled:
        assert message.startswith(f"cancelled by run {runs.ids[n]} (overlap policy cancel_other")
        assert f"cancelled by run {runs.ids[n]}" in runs.error(n)
    assert overlap_holder(runs.name) is None


def test_terminate_other_kills_the_running_run_and_starts_at_once(two_workers):
    runs = Runs("terminate_other")

    runs.publish(1, STOPPED, then=runs.runs, what="to run")
    for n in (2, 3):
        runs.publish(n, STOPPED, then=runs.runs, what="to take the lock over and run")
    runs.publish(4, QUICK, then=runs.stored("SUCCESS"), what="to take the lock and succeed")

    states = runs.wait_until_all_finished()
    assert states == {1: "REVOKED", 2: "REVOKED", 3: "REVOKED", 4: "SUCCESS"}
    assert runs.started_in_order(1, 2, 3, 4) == [1, 2, 3, 4]
    terminated = runs.events("task.terminated", 3)
    assert [n for n, _ in terminated] == [1, 2, 3]
    for n, message in terminated:
        assert message.startswith(f"terminated by run {runs.ids[n]}")
        assert f"terminated by run {runs.ids[n]}" in runs.error(n)
    assert overlap_holder(runs.name) is None
