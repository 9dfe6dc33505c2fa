"""Overlap policies end to end: a real `celery beat` (our scheduler) publishes the runs, two real
worker processes run them, on the real Redis and database (issue 19).

Each test creates a periodic task of `scheduler.sleep` that runs every second, sleeps SECONDS and
may run four times (max runs): beat publishes exactly four runs, one a second, and then disables
the schedule by itself. Each run sleeps far longer than the three seconds the other three take to
come, so runs 2, 3 and 4 all overlap the run before them. The runs are numbered in the order beat
published them, read back from its `task.queued` events (their time and their due time, the
`scheduled_for` header). Then the exact set of runs made, their order, their stored states and
the events that say why.

test_overlap_integration.py publishes the runs itself, one by one, to test the same policies
step by step; test_beat_integration.py tests beat alone.
"""

from __future__ import annotations

import itertools
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from config.celery import app
from scheduler import services
from scheduler.beat import scheduler as beat
from scheduler.beat.changes import CHANGES_CHANNEL
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.devstack.stack import beat_argv
from scheduler.models import ScheduleOptions, TaskEvent
from scheduler.observability.health import MISSED_RUNS_KEY
from scheduler.protocol import FINISHED_STATES
from scheduler.worker.overlap import overlap_buffered, overlap_holder
from tests.processes import RunningProcess, child_env, start_process, start_workers, wait_for
from tests.scheduler.beat.helpers import forget_beats

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUNS = 4
# Each run's sleep. Run 4 is published about three seconds after run 1; run 1 sleeps two seconds
# longer than that, so every overlap is decided while the run before still runs, with room for a
# slow pickup on a busy machine. Under the default queue's soft limit (8 s).
SECONDS = 5.0
# Long enough for a beat to start, and for the four runs one after the other (buffer_all).
WAIT = RUNS * SECONDS + 30


@pytest.fixture(scope="module")
def two_workers(
    django_db_setup: None, django_db_blocker: object, run_dir: Path
) -> Iterator[list[RunningProcess]]:
    """Two worker processes on the default queue (where `scheduler.sleep` runs), three pool
    processes each, started side by side.

    Three, not two: a run decides its overlap when it starts in a pool process, and a pool
    process killed by `terminate_other` is replaced by a fresh one only after it has set up
    Django, seconds on a busy machine. With two, all four runs on one worker could leave run 4
    waiting for a process until run 3 had finished (seen once in CI), and run 3 would then end
    on its own instead of being terminated."""
    workers = start_workers(count=2, log_dir=run_dir, queues=["default"], concurrency=3)
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        # Nothing a failed test left behind reaches the next module's workers.
        with app.connection_for_write() as connection:
            channel: Any = connection.default_channel
            channel.queue_purge("default")


def _forget_beats() -> None:
    """No leader lock, heartbeat or missed-runs count of an earlier beat."""
    forget_beats()
    get_redis().delete(redis_key(MISSED_RUNS_KEY))


def _leader_pid() -> int | None:
    """The pid of the beat holding the lock (its value is "hostname:pid:token")."""
    client: Any = get_redis()
    value = client.get(redis_key(beat.LEADER_KEY))
    return None if value is None else int(value.decode().rsplit(":", 2)[1])


def _listening() -> int:
    """How many beats listen for change notices (each subscribes after its first tick)."""
    client: Any = get_redis()
    [(_, count)] = client.pubsub_numsub(redis_key(CHANGES_CHANNEL))
    return int(count)


@pytest.fixture
def beat_process(two_workers: list[RunningProcess], run_dir: Path) -> Iterator[RunningProcess]:
    """One `celery beat` process, leading and listening for changes when the test starts: a
    schedule the test creates then is picked up at once (its save notifies beat)."""
    _forget_beats()
    argv = beat_argv(python=sys.executable)
    process = start_process("beat", argv, env=child_env(), log_dir=run_dir)
    try:

        def ready() -> bool:
            if process.process.poll() is not None:
                raise AssertionError(f"beat exited while starting:\n{process.log()}")
            return _leader_pid() == process.process.pid and _listening() >= 1

        wait_for(ready, timeout=40, what=f"beat to lead and listen\n{process.log()}")
        yield process
    finally:
        stop_beat(process)
        _forget_beats()


def stop_beat(process: RunningProcess) -> None:
    """SIGTERM (beat's graceful stop: its last event rows are written), then reap it.

    One SIGTERM: a second one would interrupt the exit (Celery's handler raises SystemExit).
    """
    if process.process.is_running():
        process.process.send(signal.SIGTERM)
        process.process.wait(20)
    process.stop()  # kills what is left of its process group


class Runs:
    """The runs beat makes of one periodic task, numbered 1 to 4 in the order it published them."""

    def __init__(
        self, policy: str, beat_process: RunningProcess, workers: list[RunningProcess]
    ) -> None:
        self.beat = beat_process
        self.workers = workers
        self.name = f"beat overlap {policy} {uuid.uuid4().hex[:6]}"
        services.schedule_create(
            name=self.name,
            task="scheduler.sleep",
            schedule="every 1 second",
            params={"seconds": SECONDS},
            overlap=policy,
            max_runs=RUNS,
        )
        self.ids: list[str] = []

    def published(self) -> list[TaskEvent]:
        """Beat's `task.queued` event of each run, in the order of publishing. A buffered run
        published again for its turn (by a worker) has a second one, later: not counted."""
        rows = TaskEvent.objects.filter(type="task.queued", periodic_task_name=self.name)
        first: dict[str, TaskEvent] = {}
        for row in rows.order_by("created_at", "id"):
            first.setdefault(row.task_id, row)
        return list(first.values())

    def wait_until_published(self) -> None:
        """Wait until beat published its four runs and stopped the schedule, stop beat, and
        number the runs."""

        def done() -> bool:
            row = PeriodicTask.objects.get(name=self.name)
            return len(self.published()) >= RUNS and not row.enabled

        wait_for(done, timeout=WAIT, what=f"beat to publish {RUNS} runs\n{self.beat.log()}")
        stop_beat(self.beat)  # nothing more to publish; its last event rows are written

        published = self.published()
        self.ids = [row.task_id for row in published]
        assert len(self.ids) == RUNS, f"beat published {len(self.ids)} runs: {self.ids}"
        # Published in the order of their due times, one a second: run n is the n-th run due.
        due = [datetime.fromisoformat(row.payload["scheduled_for"]) for row in published]
        assert due == sorted(set(due)), due
        row = PeriodicTask.objects.get(name=self.name)
        assert row.total_run_count == RUNS
        assert ScheduleOptions.objects.get(periodic_task=row).remaining_runs == 0

    def rows(self) -> dict[str, dict[str, Any]]:
        """The stored row of each run, by its id."""
        rows = TaskResult.objects.filter(task_id__in=self.ids)
        fields = ("task_id", "status", "result", "periodic_task_name", "date_started")
        return {row["task_id"]: row for row in rows.values(*fields)}

    def wait_until_all_finished(self) -> dict[int, str]:
        """The final state of each run, by its number."""

        def finished() -> bool:
            rows = self.rows()
            return len(rows) == RUNS and all(r["status"] in FINISHED_STATES for r in rows.values())

        wait_for(finished, timeout=WAIT, what=f"the runs of {self.name!r} to finish")
        rows = self.rows()
        # Each row is the run of this periodic task (the header beat set).
        assert {row["periodic_task_name"] for row in rows.values()} == {self.name}
        return {n: rows[run_id]["status"] for n, run_id in enumerate(self.ids, start=1)}

    def explain(self) -> str:
        """What each run stored, and the workers' logs: what a failed assertion shows."""
        rows = self.rows()
        stored = "\n".join(
            f"run {n} {run_id}: {rows.get(run_id, {}).get('status')} "
            f"{rows.get(run_id, {}).get('result')}"
            for n, run_id in enumerate(self.ids, start=1)
        )
        logs = "\n".join(f"--- {worker.hostname}:\n{worker.log()}" for worker in self.workers)
        return f"{stored}\n{logs}"

    def started(self, *numbers: int) -> list[datetime]:
        """When runs `numbers` started (their last start: a buffered run's turn)."""
        rows = self.rows()
        times = [rows[self.ids[n - 1]]["date_started"] for n in numbers]
        assert None not in times, f"a run without a start time: {times}"
        return times

    def assert_one_at_a_time(self, *numbers: int) -> None:
        """Runs `numbers` started in this order, each after the one before had slept its
        SECONDS: they never ran side by side (two that did would start about 1 s apart)."""
        started = dict(zip(numbers, self.started(*numbers), strict=True))
        for a, b in itertools.pairwise(numbers):
            gap = started[b] - started[a]
            assert gap >= timedelta(seconds=SECONDS), (
                f"run {b} started {gap.total_seconds():.3f} s after run {a}"
            )

    def events(self, kind: str) -> list[tuple[int, str]]:
        """The `kind` events of these runs, in order: (run number, message)."""
        found = TaskEvent.objects.filter(periodic_task_name=self.name, type=kind)
        return [
            (self.ids.index(event.task_id) + 1, event.message)
            for event in found.order_by("created_at", "id")
        ]

    def error(self, n: int) -> str:
        return TaskResult.objects.get(task_id=self.ids[n - 1]).result or ""


def test_buffer_one_runs_the_first_overlapping_run_after_the_first_and_skips_the_others(
    beat_process: RunningProcess, two_workers: list[RunningProcess]
):
    runs = Runs("buffer_one", beat_process, two_workers)
    runs.wait_until_published()

    states = runs.wait_until_all_finished()
    assert states == {1: "SUCCESS", 2: "SUCCESS", 3: "SKIPPED", 4: "SKIPPED"}, runs.explain()
    runs.assert_one_at_a_time(1, 2)
    # All three overlapped run 1: run 2 waited for it, runs 3 and 4 found run 2 waiting.
    [(buffered, message)] = runs.events("task.buffered")
    assert buffered == 2
    assert message == f"buffered (buffer_one): runs after run {runs.ids[0]} ends"
    skipped = runs.events("task.skipped")
    assert [n for n, _ in skipped] == [3, 4]
    for _, message in skipped:
        assert f"still running (run {runs.ids[0]}) and one run is buffered already" in message
    assert overlap_holder(runs.name) is None
    assert overlap_buffered(runs.name) == []


def test_buffer_all_runs_every_overlapping_run_one_at_a_time_in_order(
    beat_process: RunningProcess, two_workers: list[RunningProcess]
):
    runs = Runs("buffer_all", beat_process, two_workers)
    runs.wait_until_published()

    states = runs.wait_until_all_finished()
    assert states == {1: "SUCCESS", 2: "SUCCESS", 3: "SUCCESS", 4: "SUCCESS"}, runs.explain()
    runs.assert_one_at_a_time(1, 2, 3, 4)
    # All three were buffered while run 1 ran, each behind the ones before it.
    buffered = runs.events("task.buffered")
    assert [n for n, _ in buffered] == [2, 3, 4]
    prefix = f"buffered (buffer_all): runs after run {runs.ids[0]} ends"
    assert [message for _, message in buffered] == [
        prefix,
        f"{prefix}, 1 buffered run ahead of it",
        f"{prefix}, 2 buffered runs ahead of it",
    ]
    # Each buffered run went out again when its turn came, under its own id, in order.
    queued = [n for n, _ in runs.events("task.queued")]
    assert queued == [1, 2, 3, 4, 2, 3, 4]
    assert overlap_holder(runs.name) is None
    assert overlap_buffered(runs.name) == []


@pytest.mark.parametrize(
    ("policy", "how", "event"),
    [
        ("cancel_other", "cancelled", "task.cancelled"),
        ("terminate_other", "terminated", "task.terminated"),
    ],
)
def test_each_run_stops_the_one_before_and_the_last_succeeds(
    beat_process: RunningProcess,
    two_workers: list[RunningProcess],
    policy: str,
    how: str,
    event: str,
):
    runs = Runs(policy, beat_process, two_workers)
    runs.wait_until_published()

    states = runs.wait_until_all_finished()
    assert states == {1: "REVOKED", 2: "REVOKED", 3: "REVOKED", 4: "SUCCESS"}, runs.explain()
    started = runs.started(1, 2, 3, 4)
    assert started == sorted(started), started
    stopped = runs.events(event)
    assert [n for n, _ in stopped] == [1, 2, 3]
    # Run n was stopped by run n + 1, and its row says so.
    for n, message in stopped:
        assert message.startswith(f"{how} by run {runs.ids[n]} (overlap policy {policy}")
        assert f"{how} by run {runs.ids[n]}" in runs.error(n)
    # Nobody waited in vain or was skipped: each run either ran to its end or was stopped.
    assert runs.events("task.skipped") == []
    assert overlap_holder(runs.name) is None
