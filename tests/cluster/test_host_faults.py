"""Faults of a whole host (tests/cluster/run.py's hosts): every process of a worker host killed
while it runs work. Its runs come back to the broker after the visibility timeout and the other
worker host takes them over once their claims' leases (hard limit and margin) have ended:
none lost, none finished twice."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
from django_celery_results.models import TaskResult

from scheduler.models import TaskEvent
from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.services import task_enqueue
from tests.cluster.conftest import Cluster, RecordFigures, StartOn, host_worker_argv
from tests.processes import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

RUNS = 8
SECONDS = 3.0
# The killed host's runs come back to the broker after this (and Kombu's next sweep).
VISIBILITY_TIMEOUT = "8"


def test_a_worker_host_killed_mid_run_loses_no_run_and_finishes_none_twice(
    cluster: Cluster, start_on: StartOn, record_figures: RecordFigures
) -> None:
    env = {"CELERY_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT}
    doomed, survivor = cluster.hosts["worker1"], cluster.hosts["worker2"]
    victim = start_on(doomed, "worker", host_worker_argv(queues=["default"]), **env)
    names = {f"worker@{doomed.name}", f"worker@{survivor.name}"}
    wait_for(
        lambda: f"worker@{doomed.name}" in workers_seen_within(30),
        timeout=90,
        what="the first worker host's worker",
    )
    task_ids = [
        task_enqueue(task="scheduler.sleep", params={"seconds": SECONDS}) for _ in range(RUNS)
    ]
    # The doomed host holds every run (two running, the rest prefetched) when it dies.
    wait_for(
        lambda: TaskEvent.objects.filter(task_id__in=task_ids, type="task.started").count() >= 2,
        timeout=60,
        what="the first worker host to start two runs",
    )
    victim.process.send(signal.SIGKILL)  # its whole process group: the worker and its pool
    killed_at = time.monotonic()
    assert victim.process.wait(10)
    start_on(survivor, "worker", host_worker_argv(queues=["default"]), **env)

    def all_succeeded() -> bool:
        done = TaskResult.objects.filter(task_id__in=task_ids, status="SUCCESS").count()
        return done == RUNS

    wait_for(all_succeeded, timeout=120, what=f"all {RUNS} runs to succeed on the other host")
    recovered_in = time.monotonic() - killed_at

    def finished() -> Counter[str]:
        return Counter(
            TaskEvent.objects.filter(task_id__in=task_ids, type="task.succeeded").values_list(
                "task_id", flat=True
            )
        )

    # A worker writes its events a moment after the results (its publisher's next flush).
    wait_for(lambda: len(finished()) == RUNS, timeout=30, what="every run's task.succeeded")
    time.sleep(2)  # and any second one a duplicate run would add
    assert max(finished().values()) == 1, "a run finished twice"
    ran_on = set(TaskResult.objects.filter(task_id__in=task_ids).values_list("worker", flat=True))
    assert ran_on == {f"worker@{survivor.name}"}
    assert names >= ran_on
    record_figures(
        "worker_host_killed",
        runs=RUNS,
        run_seconds=SECONDS,
        visibility_timeout_seconds=int(VISIBILITY_TIMEOUT),
        lost=RUNS - len(finished()),
        finished_twice=sum(1 for count in finished().values() if count > 1),
        all_succeeded_after_kill_seconds=round(recovered_in, 1),
    )
