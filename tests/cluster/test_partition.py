"""A worker host cut off the network mid-run (tests/cluster/network.py `cut`), for longer than
the visibility timeout, then healed: the run an operator tried (issue 21), as a test.

Two worker hosts; 8 runs of `scheduler.sleep` 6 s (soft limit 8 s, hard 10 s) queued; the first
host's link cut 2 s later, for 30 s. Its runs come back to the broker after the visibility
timeout, and the other host takes them over once their claims' leases (hard limit and margin)
have passed: none lost, none failed because of the partition, no second execution started
while the first could still be running, and the cut-off host's own runs end within their hard
limit (every network call on the task path has a timeout below it, and the pool process's own
watchdog ends a run its cut-off main process cannot). A run the cut-off host had started is
executed again after its lease, recorded as such (a `task.duplicate` event, executed_again).
`scheduler status` and the health check (/healthz) show the cut-off host gone meanwhile, and
back once healed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from django_celery_results.models import TaskResult

from scheduler.models import TaskEvent
from scheduler.observability.health import check_workers
from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.services import task_enqueue
from scheduler.worker import watchdog
from tests.cluster.conftest import Cluster, RecordFigures, StartOn, host_worker_argv
from tests.processes import MANAGE, child_env, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

RUNS = 8
SECONDS = 6.0
CUT_AFTER = 2.0
CUT_FOR = 30.0
VISIBILITY_TIMEOUT = "8"
# Seconds of silence after which status and /healthz no longer show a worker (a short
# WORKER_HEALTH_WINDOW, so that the 30 s cut shows it).
SHOWN_WINDOW = 10


HARD_LIMIT = 10.0  # the default queue's
# A worker log's line: its time, then what it says.
LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): [^]]*\] (.*)$")
RECEIVED = re.compile(r"Task scheduler\.sleep\[([0-9a-f-]+)\] received")
WATCHDOG = re.compile(r"\[watchdog\] run ([0-9a-f-]+) outlived")


def _status_workers() -> list[str]:
    """The workers `scheduler status --json` shows (run as an operator would, from this
    machine's own address), seen within SHOWN_WINDOW seconds."""
    status = subprocess.run(
        [sys.executable, MANAGE, "scheduler", "status", "--json"],
        env=child_env(WORKER_HEALTH_WINDOW=str(SHOWN_WINDOW)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(status.stdout)["workers"])


def _received_to_watchdog(log: str) -> dict[str, float]:
    """Seconds from a run's receipt to its watchdog's exit, by task id, from a worker's log."""
    received: dict[str, datetime] = {}
    lived: dict[str, float] = {}
    for line in log.splitlines():
        matched = LOG_LINE.match(line)
        if matched is None:
            continue
        # The log's times are its host's local time (UTC here); only differences are used.
        at = datetime.strptime(matched[1], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        if found := RECEIVED.search(matched[2]):
            received[found[1]] = at
        elif (found := WATCHDOG.search(matched[2])) and found[1] in received:
            lived[found[1]] = (at - received[found[1]]).total_seconds()
    return lived


def test_a_worker_host_cut_off_mid_run_loses_none_and_fails_none(
    cluster: Cluster, start_on: StartOn, record_figures: RecordFigures
) -> None:
    env = {"CELERY_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT}
    cut_off, other = cluster.hosts["worker1"], cluster.hosts["worker2"]
    cut_off_node, other_node = f"worker@{cut_off.name}", f"worker@{other.name}"
    workers = {
        host.name: start_on(host, "worker", host_worker_argv(queues=["default"]), **env)
        for host in (cut_off, other)
    }
    wait_for(
        lambda: {cut_off_node, other_node} <= set(workers_seen_within(30)),
        timeout=90,
        what="both worker hosts' workers",
    )
    task_ids = [
        task_enqueue(task="scheduler.sleep", params={"seconds": SECONDS}) for _ in range(RUNS)
    ]
    time.sleep(CUT_AFTER)
    events = TaskEvent.objects.filter(task_id__in=task_ids)
    cluster.cut(cut_off)
    cut_at = time.monotonic()
    try:
        # What an operator sees meanwhile: the cut-off host gone, the other one there.
        time.sleep(SHOWN_WINDOW + 5)
        assert _status_workers() == [other_node]
        assert check_workers(window=SHOWN_WINDOW).data["workers"] == [other_node]
        time.sleep(max(0.0, CUT_FOR - (time.monotonic() - cut_at)))
    finally:
        cluster.heal(cut_off)
    healed_at = time.monotonic()
    wait_for(
        lambda: {cut_off_node, other_node} <= set(workers_seen_within(SHOWN_WINDOW)),
        timeout=30,
        what="the healed host's worker to be seen again",
    )
    shown_again_after = time.monotonic() - healed_at
    assert _status_workers() == sorted([cut_off_node, other_node])

    def ended() -> dict[str, str]:
        return dict(
            TaskResult.objects.filter(
                task_id__in=task_ids, status__in=["SUCCESS", "FAILURE", "REVOKED"]
            ).values_list("task_id", "status")
        )

    wait_for(lambda: len(ended()) == RUNS, timeout=120, what=f"all {RUNS} runs to end")
    done_in = time.monotonic() - cut_at
    # Anything the healed host still had to write (its events, a late result).
    wait_for(
        lambda: events.filter(type="task.succeeded").count() >= RUNS,
        timeout=30,
        what="every run's task.succeeded",
    )
    time.sleep(5)

    failures = dict(
        TaskResult.objects.filter(task_id__in=task_ids, status="FAILURE").values_list(
            "task_id", "result"
        )
    )
    assert Counter(ended().values()) == Counter({"SUCCESS": RUNS}), failures
    assert not events.filter(type="task.failed").exists()

    # The cut-off host's runs: started there before the cut, its events written after healing.
    first_starts = dict(
        events.filter(type="task.started", worker=cut_off_node).values_list("task_id", "created_at")
    )
    assert first_starts, "the cut-off host started none of the runs before the cut"
    # Each ended at its hard limit (and the watchdog's grace), on the cut-off host itself.
    lived = _received_to_watchdog(workers[cut_off.name].log_path.read_text(errors="replace"))
    assert set(lived) == set(first_starts)
    assert max(lived.values()) < HARD_LIMIT + watchdog.GRACE + 1, lived
    # The other host deferred its copies until the claims' leases ended, then ran them: no
    # second execution started while the first could still be running.
    again = {
        event.task_id: event.created_at
        for event in events.filter(type="task.duplicate", payload__executed_again=True)
    }
    assert set(again) == set(first_starts)
    gaps = [(again[task_id] - first_starts[task_id]).total_seconds() for task_id in again]
    assert min(gaps) >= HARD_LIMIT, gaps
    dropped = Counter(
        events.filter(type="task.duplicate")
        .exclude(payload__executed_again=True)
        .values_list("task_id", flat=True)
    )
    started = Counter(events.filter(type="task.started").values_list("task_id", flat=True))
    executions = {task_id: started[task_id] - dropped[task_id] for task_id in task_ids}
    assert all(executions[task_id] == 1 for task_id in task_ids if task_id not in again)
    record_figures(
        "worker_host_partitioned",
        runs=RUNS,
        run_seconds=SECONDS,
        cut_after_seconds=CUT_AFTER,
        cut_for_seconds=CUT_FOR,
        visibility_timeout_seconds=int(VISIBILITY_TIMEOUT),
        lost=RUNS - len(ended()),
        failed=len(failures),
        started_on_cut_off_host=len(first_starts),
        ended_by_watchdog_on_cut_off_host=len(lived),
        cut_off_run_lived_seconds_max=round(max(lived.values()), 1),
        executed_again_after_lease=len(again),
        second_execution_after_first_start_seconds_min=round(min(gaps), 1),
        all_succeeded_after_cut_seconds=round(done_in, 1),
        healed_host_shown_again_after_seconds=round(shown_again_after, 1),
    )
