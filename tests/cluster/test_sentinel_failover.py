"""Redis without a single point of failure: a primary and a replica on two hosts, three
sentinels on three more, and the whole product on them through REDIS_SENTINELS (a worker host,
beat and the web server on the web host). Under load (beat's schedules every second, API calls
all along) the primary is killed with SIGKILL.

Promise: the sentinels promote the replica; worker, beat and web follow it by themselves; every
run beat recorded and every run the API accepted ends SUCCESS, none executed twice; the time
until the API and beat work again is reported.

This test's Redis servers are its own (the suite's Redis, which the test run itself uses, stays
as it is); only the processes it starts use the sentinels.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult
from rest_framework.authtoken.models import Token

from scheduler.devstack.stack import beat_argv
from scheduler.models import TaskEvent
from scheduler.services import schedule_create
from tests.browser import LiveServer, post_task
from tests.cluster.conftest import Cluster, RecordFigures, StartOn, host_worker_argv
from tests.cluster.network import Host
from tests.processes import RunningProcess, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

MASTER = "scheduler"
REDIS_PORT = 6390
SENTINEL_PORT = 26390
# The sentinels call the primary down after this long without an answer.
DOWN_AFTER_MS = 2000
SCHEDULES = ("sentinel a", "sentinel b")
RUN_AFTER_KILL = 25.0  # seconds of load after the kill


def _redis_argv(host: Host, workdir: Path, *extra: str) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return [
        "redis-server",
        *("--bind", host.address, "--port", str(REDIS_PORT)),
        *("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
        *("--protected-mode", "no", "--dir", str(workdir)),
        *extra,
    ]


def _sentinel_argv(host: Host, workdir: Path, primary: Host) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sentinel.conf"
    config.write_text(
        f"bind {host.address}\n"
        f"port {SENTINEL_PORT}\n"
        "protected-mode no\n"
        f"dir {workdir}\n"
        f"sentinel monitor {MASTER} {primary.address} {REDIS_PORT} 2\n"
        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
        f"sentinel parallel-syncs {MASTER} 1\n"
    )
    return ["redis-server", str(config), "--sentinel"]


def _ask(host: Host, port: int, *command: str) -> str:
    done = host.run(["redis-cli", "-h", host.address, "-p", str(port), *command], timeout=10)
    return done.stdout.strip()


class Load:
    """API calls, one after another, from a thread of their own, until stopped."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.server, self.token = server, token
        self.answers: list[tuple[float, int, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, body = post_task(self.server, self.token)
            self.answers.append((time.monotonic(), status, body))
            time.sleep(0.1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        assert not self._thread.is_alive(), "an API call hung"


@pytest.fixture
def sentinels(cluster: Cluster, start_on: StartOn, run_dir: Path) -> dict[str, Any]:
    """A primary on beat2, its replica on worker2, sentinels on data, web and worker1 (stopped
    with the test's other processes, by `start_on`)."""
    primary_host, replica_host = cluster.hosts["beat2"], cluster.hosts["worker2"]
    primary = start_on(primary_host, "redis-primary", _redis_argv(primary_host, run_dir / "r1"))
    replica = start_on(
        replica_host,
        "redis-replica",
        _redis_argv(
            replica_host,
            run_dir / "r2",
            *("--replicaof", primary_host.address, str(REDIS_PORT)),
        ),
    )
    wait_for(
        lambda: "master_link_status:up" in _ask(replica_host, REDIS_PORT, "info", "replication"),
        timeout=30,
        what="the replica to follow the primary",
    )
    watchers = [cluster.hosts[name] for name in ("data", "web", "worker1")]
    for host in watchers:
        start_on(host, "sentinel", _sentinel_argv(host, run_dir / f"s-{host.name}", primary_host))

    def all_see_the_replica() -> bool:
        return all(
            "num-slaves" in (answer := _ask(host, SENTINEL_PORT, "sentinel", "master", MASTER))
            and answer.split("num-slaves\n", 1)[1].split("\n", 1)[0] == "1"
            for host in watchers
        )

    wait_for(all_see_the_replica, timeout=30, what="the sentinels to find the replica")
    env = {
        "REDIS_SENTINELS": ",".join(f"{host.address}:{SENTINEL_PORT}" for host in watchers),
        "REDIS_SENTINEL_MASTER": MASTER,
        "REDIS_URL": "redis://sentinel/0",
    }
    return {
        "env": env,
        "primary": primary,
        "primary_host": primary_host,
        "replica": replica,
        "replica_host": replica_host,
        "watchers": watchers,
    }


def test_the_primary_killed_under_load_fails_over_and_nothing_is_lost_or_run_twice(
    cluster: Cluster,
    start_on: StartOn,
    sentinels: dict[str, Any],
    run_dir: Path,
    record_figures: RecordFigures,
) -> None:
    env = sentinels["env"]
    for name in SCHEDULES:
        schedule_create(name=name, task="scheduler.ping", schedule="every 1 second")
    user = get_user_model()._default_manager.create_superuser("admin", "a@example.com", "pw")
    token = str(Token.objects.create(user=user).key)
    worker_host, web_host = cluster.hosts["worker1"], cluster.hosts["web"]
    start_on(worker_host, "worker", host_worker_argv(queues=["default"]), **env)
    beat: RunningProcess = start_on(web_host, "beat", beat_argv(python=sys.executable), **env)
    server = LiveServer(log_dir=run_dir, host=web_host, env=dict(env))
    server.start()
    load = Load(server, token)
    try:
        # Working through the sentinels: a run the API queued ends SUCCESS.
        status, body = post_task(server, token)
        assert status == 202, body
        wait_for(
            lambda: TaskResult.objects.filter(task_id=body["task_id"], status="SUCCESS").exists(),
            timeout=60,
            what="a run through the sentinels' primary",
        )
        load.start()
        time.sleep(4)
        sentinels["primary"].process.send(signal.SIGKILL)
        killed_at = time.monotonic()
        replica_host: Host = sentinels["replica_host"]
        wait_for(
            lambda: (
                replica_host.address
                in _ask(
                    sentinels["watchers"][0],
                    SENTINEL_PORT,
                    "sentinel",
                    "get-master-addr-by-name",
                    MASTER,
                )
            ),
            timeout=60,
            interval=0.2,
            what="the sentinels to promote the replica",
        )
        promoted_after = time.monotonic() - killed_at
        time.sleep(max(0.0, RUN_AFTER_KILL - (time.monotonic() - killed_at)))
    finally:
        load.stop()
        beat.process.send(signal.SIGTERM)
        beat.process.wait(30)
        server.stop()

    after_kill = [(at, status) for at, status, _ in load.answers if at > killed_at]
    first_ok = next((at for at, status in after_kill if status == 202), None)
    assert first_ok is not None, "the API never queued a run again after the failover"
    api_back_after = first_ok - killed_at
    statuses = [status for _, status, _ in load.answers]
    assert set(statuses) <= {202, 503}, load.answers
    accepted = [body["task_id"] for _, status, body in load.answers if status == 202]

    def recorded(name: str) -> int:
        return int(PeriodicTask.objects.get(name=name).total_run_count)

    def runs(name: str) -> int:
        return TaskResult.objects.filter(periodic_task_name=name).count()

    def accepted_done() -> int:
        return TaskResult.objects.filter(task_id__in=accepted, status="SUCCESS").count()

    wait_for(
        lambda: (
            accepted_done() == len(accepted)
            and all(runs(name) >= recorded(name) for name in SCHEDULES)
        ),
        timeout=90,
        what="every accepted and recorded run to end",
    )
    time.sleep(2)  # a run published twice would be stored (or dropped) a moment later
    lost = len(accepted) - accepted_done()
    lost += sum(max(0, recorded(name) - runs(name)) for name in SCHEDULES)
    executions = (
        TaskEvent.objects.filter(type="task.succeeded")
        .exclude(task_id="")
        .values("task_id")
        .annotate(n=Count("id"))
    )
    executed_twice = sum(1 for row in executions if row["n"] > 1)
    beat_results = TaskResult.objects.filter(periodic_task_name__in=SCHEDULES)
    record_figures(
        "redis_primary_killed_sentinel_failover",
        sentinels=3,
        down_after_ms=DOWN_AFTER_MS,
        replica_promoted_after_seconds=round(promoted_after, 1),
        api_queues_again_after_seconds=round(api_back_after, 1),
        api_calls=len(statuses),
        api_refused_503=statuses.count(503),
        runs_accepted_by_the_api=len(accepted),
        runs_recorded_by_beat=sum(recorded(name) for name in SCHEDULES),
        lost=lost,
        executed_twice=executed_twice,
        beat_runs_stored=beat_results.count(),
    )
    assert lost == 0
    assert executed_twice == 0
