"""Beat leadership across hosts: two beats, on the web host and on a beat host of their own; the
leader's host is cut off the network for longer than the leader lock's TTL, then healed.

Promise: the other beat leads within the TTL (and the time it takes to notice); no run is
published twice, before or after healing (each publish is fenced: the leader confirms it still
holds the lock right before each batch, and a beat that cannot reach Redis stands by); none is
missed: every run beat recorded reaches the worker once.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import pytest
from django.db.models import Count
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from scheduler.beat import scheduler as beat
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.devstack.stack import beat_argv
from scheduler.models import TaskEvent
from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.services import schedule_create
from tests.cluster.conftest import Cluster, RecordFigures, StartOn, host_worker_argv
from tests.processes import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

SCHEDULES = ("partition a", "partition b", "partition c")
TTL = 10.0
CUT_FOR = 25.0
BEAT_HOSTS = ("web", "beat2")


def _leader_host() -> str | None:
    value: Any = get_redis().get(redis_key(beat.LEADER_KEY))
    return None if value is None else value.decode().split(":", 1)[0]


def test_the_beat_leaders_host_cut_off_hands_over_and_no_run_goes_out_twice(
    cluster: Cluster, start_on: StartOn, record_figures: RecordFigures
) -> None:
    get_redis().delete(redis_key(beat.LEADER_KEY))
    for name in SCHEDULES:
        schedule_create(name=name, task="scheduler.ping", schedule="every 1 second")
    worker_host = cluster.hosts["worker1"]
    start_on(worker_host, "worker", host_worker_argv(queues=["default"]))
    wait_for(
        lambda: f"worker@{worker_host.name}" in workers_seen_within(30),
        timeout=90,
        what="the worker host's worker",
    )
    env = {"BEAT_LEADER_TTL": str(TTL)}
    beats = {
        name: start_on(cluster.hosts[name], "beat", beat_argv(python=sys.executable), **env)
        for name in BEAT_HOSTS
    }
    wait_for(lambda: _leader_host() in BEAT_HOSTS, timeout=60, what="a beat to lead")
    time.sleep(4)  # it publishes a while
    first = _leader_host()
    assert first is not None
    (other,) = set(BEAT_HOSTS) - {first}
    cluster.cut(cluster.hosts[first])
    cut_at = time.monotonic()
    try:
        wait_for(
            lambda: _leader_host() == other,
            timeout=TTL + 20,
            interval=0.05,
            what=f"the beat on {other} to lead",
        )
        takeover = time.monotonic() - cut_at
        time.sleep(max(0.0, CUT_FOR - (time.monotonic() - cut_at)))
    finally:
        cluster.heal(cluster.hosts[first])
    time.sleep(8)  # the healed beat comes back: it must stand by, and publish nothing
    assert _leader_host() == other
    for process in beats.values():
        process.process.send(signal.SIGTERM)
    for process in beats.values():
        process.process.wait(30)

    def recorded(name: str) -> int:
        return int(PeriodicTask.objects.get(name=name).total_run_count)

    def runs(name: str) -> int:
        return TaskResult.objects.filter(periodic_task_name=name).count()

    wait_for(
        lambda: all(runs(name) >= recorded(name) for name in SCHEDULES),
        timeout=60,
        what="the worker to run what beat recorded",
    )
    time.sleep(2)  # a run published twice would be stored (or dropped) a moment later
    lost = sum(max(0, recorded(name) - runs(name)) for name in SCHEDULES)
    twice = sum(max(0, runs(name) - recorded(name)) for name in SCHEDULES)
    # A run published again under its own id is dropped by the workers: still a publish too many.
    copies = TaskEvent.objects.filter(type="task.duplicate", periodic_task_name__in=SCHEDULES)
    executions = (
        TaskEvent.objects.filter(type="task.succeeded", periodic_task_name__in=SCHEDULES)
        .values("task_id")
        .annotate(n=Count("id"))
    )
    executed_twice = sum(1 for row in executions if row["n"] > 1)
    record_figures(
        "beat_leader_host_partitioned",
        leader_ttl_seconds=TTL,
        cut_for_seconds=CUT_FOR,
        other_beat_leads_after_seconds=round(takeover, 1),
        runs=sum(runs(name) for name in SCHEDULES),
        lost=lost,
        published_twice=twice + copies.count(),
        executed_twice=executed_twice,
    )
    assert takeover <= TTL + 5
    assert (lost, twice, copies.count(), executed_twice) == (0, 0, 0, 0)
