"""Fault 3: two beats, and the leader is killed with SIGKILL, twice, at unplanned moments.

Promise: every periodic run is published once (never twice, none recorded and not published),
and a standby leads within the leader lock's TTL (BEAT_LEADER_TTL, 10 s by default; the issue
asks for 30 s at most), catching up once on what came due meanwhile (misfire policy run_once).
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from django.db.models import Count
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from scheduler.beat import scheduler as beat
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import TaskEvent
from scheduler.services import schedule_create
from tests.processes import RunningProcess, start_beat, start_worker, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SCHEDULES = ("failover a", "failover b", "failover c")
KILLS = 2
TTL = "10"  # the default, stated so that the figure is the product's


def _leader_pid() -> int | None:
    value: Any = get_redis().get(redis_key(beat.LEADER_KEY))
    return None if value is None else int(value.decode().rsplit(":", 2)[1])


def _publishes(name: str) -> list[tuple[float, str]]:
    """(due time, task id) of each publish of `name`'s runs: the run's `scheduled_for`, as beat
    publishes by due times (a run published late is followed by the next on its due time, so
    publish times alone can be close without a run going out twice)."""
    rows = TaskEvent.objects.filter(type="task.queued", periodic_task_name=name)
    return sorted(
        (datetime.fromisoformat(row.payload["scheduled_for"]).timestamp(), row.task_id)
        for row in rows
    )


def _leads_one_of(pids: dict[int, RunningProcess]) -> bool:
    return _leader_pid() in pids


def _taken_over_from(dead: int) -> bool:
    return _leader_pid() not in (None, dead)


def _recorded(name: str) -> int:
    return int(PeriodicTask.objects.get(name=name).total_run_count)


def _runs(name: str) -> int:
    return TaskResult.objects.filter(periodic_task_name=name).count()


def test_a_standby_beat_takes_over_and_no_run_is_published_twice(run_dir, fault_report):
    get_redis().delete(redis_key(beat.LEADER_KEY))
    for name in SCHEDULES:
        schedule_create(name=name, task="scheduler.ping", schedule="every 1 second")
    worker = start_worker(log_dir=run_dir, queues=["default"], concurrency=2)
    beats: list[RunningProcess] = []
    takeovers: list[float] = []
    rng = random.Random(3)  # when to strike
    try:
        beats += [start_beat(log_dir=run_dir, env={"BEAT_LEADER_TTL": TTL}) for _ in range(2)]
        for _ in range(KILLS):
            by_pid = {b.process.pid: b for b in beats if b.process.is_running()}
            wait_for(partial(_leads_one_of, by_pid), timeout=40, what="a leader")
            leader = by_pid[_leader_pid() or 0]
            time.sleep(2 + rng.random() * 2)  # it publishes a while; then, at any moment:
            leader.process.send(signal.SIGKILL)
            killed_at = time.time()
            assert leader.process.wait(10)
            wait_for(
                partial(_taken_over_from, leader.process.pid),
                timeout=30,
                interval=0.05,
                what="a standby to take over",
            )
            takeovers.append(time.time() - killed_at)
            # A new standby, as a supervisor would restart the dead one.
            beats.append(start_beat(log_dir=run_dir, env={"BEAT_LEADER_TTL": TTL}))
        time.sleep(3)  # runs under the last leader
        for process in beats:
            process.process.send(signal.SIGTERM)
        for process in beats:
            process.process.wait(20)
        # Every run beat recorded reaches the worker, once: its results are the count.
        wait_for(
            lambda: all(_runs(name) >= _recorded(name) for name in SCHEDULES),
            timeout=30,
            what="the worker to run what beat published",
        )
        time.sleep(1)  # a run published twice would be stored a moment later
    finally:
        for process in beats:
            process.stop()
        worker.stop()

    twice = lost = 0
    gaps: list[float] = []
    for name in SCHEDULES:
        recorded, runs = _recorded(name), _runs(name)
        twice += max(0, runs - recorded)  # a run published twice runs twice
        lost += max(0, recorded - runs)  # recorded as run, never published
        # Due times of the publishes beat logged (its last 0.2 s of rows die with a kill -9).
        # One publish per run id: a run published again under its id (a leader killed between
        # publishing and recording) is the same run, dropped by the workers. Two ids for one
        # due time, or due times closer than the interval, would be a run published twice.
        first_publish = {task_id: at for at, task_id in reversed(_publishes(name))}
        publishes = sorted((at, task_id) for task_id, at in first_publish.items())
        deltas = [later[0] - earlier[0] for earlier, later in itertools.pairwise(publishes)]
        twice += sum(1 for delta in deltas if delta < 0.5)
        gaps += deltas
    executions = (
        TaskEvent.objects.filter(type="task.succeeded", periodic_task_name__in=SCHEDULES)
        .values("task_id")
        .annotate(n=Count("id"))
    )
    executed_twice = sum(1 for row in executions if row["n"] > 1)
    fault_report.record(
        "3 two beats, leader kill -9",
        kills=KILLS,
        leader_ttl_s=float(TTL),
        takeover_s=[round(t, 1) for t in takeovers],
        runs_published=sum(_runs(name) for name in SCHEDULES),
        published_twice=twice,
        executed_twice=executed_twice,
        recorded_not_published=lost,
        longest_gap_s=round(max(gaps), 1),
    )
    assert twice == 0
    assert executed_twice == 0
    assert lost == 0
    assert max(takeovers) <= 30
