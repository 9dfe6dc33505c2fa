"""Two worker hosts on one data host (tests/cluster/run.py): each worker runs on a host of its
own, under that host's hostname, and reaches PostgreSQL and Redis over the network; the runs
queued are shared between them, and `scheduler status` shows each host."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django_celery_results.models import TaskResult

from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.services import task_enqueue
from tests.cluster.conftest import Cluster, StartOn, host_worker_argv
from tests.processes import MANAGE, child_env, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

RUNS = 40


def test_a_host_has_its_own_hostname_and_reaches_the_data_host_only_over_the_network(
    cluster: Cluster,
) -> None:
    worker = cluster.hosts["worker1"]
    data = cluster.hosts["data"]

    assert worker.run(["hostname"]).stdout.strip() == "worker1"
    # Its loopback is its own: nothing of the data host's answers there.
    local = worker.run(["redis-cli", "-h", "127.0.0.1", "ping"], timeout=10)
    assert local.stdout.strip() != "PONG"
    assert worker.run(["redis-cli", "-h", data.address, "ping"]).stdout.strip() == "PONG"


def test_two_worker_hosts_share_the_runs_and_each_shows_as_its_own_host(
    cluster: Cluster, start_on: StartOn
) -> None:
    hosts = [cluster.hosts["worker1"], cluster.hosts["worker2"]]
    for host in hosts:
        start_on(host, "worker", host_worker_argv(queues=["default"]))
    names = {f"worker@{host.name}" for host in hosts}
    wait_for(
        lambda: names <= set(workers_seen_within(30)),
        timeout=90,
        what=f"workers {sorted(names)} to beat from their hosts",
    )

    task_ids = [task_enqueue(task="scheduler.sleep", params={"seconds": 0.2}) for _ in range(RUNS)]

    def all_done() -> bool:
        return TaskResult.objects.filter(task_id__in=task_ids, status="SUCCESS").count() == RUNS

    wait_for(all_done, timeout=90, what=f"{RUNS} runs on the two worker hosts")
    ran_on = set(TaskResult.objects.filter(task_id__in=task_ids).values_list("worker", flat=True))
    assert ran_on == names
    status = subprocess.run(
        [sys.executable, MANAGE, "scheduler", "status", "--json"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert names <= set(json.loads(status.stdout)["workers"])
