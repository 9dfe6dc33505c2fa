"""Throughput that grows with hosts: the task pipeline with one worker host, then with two.

Runs inside the cluster suite's hosts (tests/cluster/run.py: network namespaces, each with its
own address and hostname; PostgreSQL and Redis on a data host of their own), as root:

    make bench-cluster
    # or: .venv/bin/python -m tests.cluster.run -- .venv/bin/python benchmarks/cluster_throughput.py

Each worker host runs one worker (prefork, concurrency 2) pinned to one core of its own with
`taskset` (worker1 on core 0, worker2 on core 1), so that the figure is about adding a host,
not about this machine's cores. The same N runs are queued from the test run's own address
and timed until every result is SUCCESS in the database and every `task.succeeded` event is
stored, first with worker1 alone, then with worker1 and worker2. Two workloads:

ping  `scheduler.ping`: the pipeline itself (the worker's CPU per task is the bound).
io    `scheduler.sleep` of 20 ms: runs that wait on something (a model, a web hook), as the
      agents' runs do; the bound is how many runs the hosts hold at once.

Printed: tasks/s with one host and with two, and the ratio (goal >= 1.8). The data host's
PostgreSQL and Redis, and this process, share the machine's cores with the workers: on a
2-core machine they take CPU from the pinned workers, which bounds the ping ratio (said in the
output when it misses the goal). Writes benchmarks/results/cluster_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from _harness import BASE_DIR, environment, write_result

GOAL = 1.8
TIMEOUT = 300.0
POLL = 0.1
CHUNK = 500
WORKLOADS: dict[str, tuple[str, dict[str, Any]]] = {
    "ping": ("scheduler.ping", {}),
    "io": ("scheduler.sleep", {"seconds": 0.02}),
}
HOSTS = (("worker1", 0), ("worker2", 1))


def _hosts() -> dict[str, Any]:
    from tests.cluster.network import Host

    described = os.environ.get("CLUSTER_HOSTS")
    if not described:
        raise SystemExit(
            "cluster_throughput: run it on the cluster suite's hosts, as root: make bench-cluster"
        )
    return {host["name"]: Host(**host) for host in json.loads(described)["hosts"]}


@contextmanager
def _worker(host: Any, core: int, log_dir: str) -> Iterator[subprocess.Popen[bytes]]:
    from scheduler.devstack.stack import worker_argv
    from scheduler.observability.worker_heartbeats import workers_seen_within

    argv = worker_argv(
        python=sys.executable,
        hostname="worker@%h",
        queues=["default"],
        extra=("-c", "2", "--without-mingle", "--without-gossip"),
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"}
    log = open(os.path.join(log_dir, f"{host.name}.log"), "wb")  # noqa: SIM115
    process = subprocess.Popen(
        ["taskset", "-c", str(core), *host.wrap(argv)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while f"worker@{host.name}" not in workers_seen_within(30):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker on {host.name} did not start (log in {log_dir})")
            time.sleep(0.2)
        yield process
    finally:
        try:
            os.killpg(process.pid, 15)
            process.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, 9)
            process.wait(10)
        log.close()


def _done_among(ids: list[str]) -> set[str]:
    from django_celery_results.models import TaskResult

    from scheduler.models import TaskEvent

    succeeded = set(
        TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").values_list(
            "task_id", flat=True
        )
    )
    recorded = set(
        TaskEvent.objects.filter(task_id__in=ids, type="task.succeeded").values_list(
            "task_id", flat=True
        )
    )
    return succeeded & recorded


def _wait_done(ids: list[str], started: float) -> None:
    pending = list(ids)
    while pending:
        chunk = pending[:CHUNK]
        done = _done_among(chunk)
        pending = [task_id for task_id in pending if task_id not in done]
        if len(done) == len(chunk):
            continue
        if time.perf_counter() - started > TIMEOUT:
            raise SystemExit(f"{len(pending)} run(s) unfinished after {TIMEOUT:g} s")
        time.sleep(POLL)


def _measure(send: Callable[[], str], tasks: int) -> float:
    _wait_done([send() for _ in range(20)], time.perf_counter())  # warm-up
    started = time.perf_counter()
    ids = [send() for _ in range(tasks)]
    _wait_done(ids, started)
    return tasks / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("cluster_throughput needs taskset (Debian: util-linux)")
    hosts = _hosts()
    os.environ["BENCH_DATABASE_URL"] = os.environ["DATABASE_URL"]
    workloads = list(WORKLOADS) if args.workload == "all" else [args.workload]
    figures: dict[str, Any] = {"tasks": args.tasks, "rounds": args.rounds, "goal_ratio": GOAL}
    log_dir = str(BASE_DIR / "var" / f"bench-cluster-{uuid.uuid4().hex[:6]}")
    os.makedirs(log_dir, exist_ok=True)
    with environment():
        from config.celery import app

        for workload in workloads:
            task, params = WORKLOADS[workload]

            def send(task: str = task, params: dict[str, Any] = params) -> str:
                return str(app.send_task(task, kwargs=params, queue="default").id)

            rates: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(args.rounds):
                for count in (1, 2):
                    with ExitStack() as stack:
                        for name, core in HOSTS[:count]:
                            stack.enter_context(_worker(hosts[name], core, log_dir))
                        rates[count].append(_measure(send, args.tasks))
            one, two = statistics.median(rates[1]), statistics.median(rates[2])
            ratio = two / one
            figures[workload] = {
                "task": task,
                "params": params,
                "one_host_tasks_per_second": round(one, 1),
                "two_hosts_tasks_per_second": round(two, 1),
                "ratio": round(ratio, 2),
                "rounds_one_host": [round(rate, 1) for rate in rates[1]],
                "rounds_two_hosts": [round(rate, 1) for rate in rates[2]],
            }
            verdict = "meets" if ratio >= GOAL else "MISSES"
            print(
                f"{workload:5} {task}: one host {one:.0f}/s, two hosts {two:.0f}/s, "
                f"ratio {ratio:.2f} ({verdict} the goal {GOAL:g})"
            )
            if ratio < GOAL and (os.cpu_count() or 0) <= 2:
                print(
                    "      this machine has 2 cores: the data host's PostgreSQL and Redis and "
                    "the sender share them with the two pinned workers"
                )
    path = write_result("cluster_throughput", figures)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
