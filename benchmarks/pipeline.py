"""Task pipeline throughput: N no-op tasks through our full path vs bare Celery, one run.

ours:     config/celery.py's app: results in the database (CELERY_RESULT_BACKEND), a TaskEvent
          row per lifecycle event and every event published to the channel layer.
          `scheduler.ping`, timed until every result is SUCCESS in the database *and* every
          `task.succeeded` event is stored.
baseline: bare Celery (benchmarks/_bare_celery.py): the same worker settings (prefork,
          concurrency 2, acks_late, prefetch 1, task_track_started, task events), results in
          Redis, no Django; timed until every result is SUCCESS in Redis.
With --periodic, ours are sent as beat sends a schedule's runs (the periodic task's name, the
due and publish times as headers), so that each run also records its dispatch lag.
Both are sent from this process as fast as it can, with their worker already consuming. Each
round runs both (in alternating order); the ratio (ours / baseline tasks per second) is the
median of the rounds' ratios, because a 2-core machine's speed drifts by tens of percent from
one minute to the next. The workers' CPU per task is printed too (a steadier figure). Writes
benchmarks/results/pipeline.json (pipeline-postgresql.json on PostgreSQL).

    .venv/bin/python benchmarks/pipeline.py [--tasks 2000] [--rounds 3] [--periodic]
    BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432 .venv/bin/python benchmarks/pipeline.py
    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python benchmarks/pipeline.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import database_vendor, environment, worker, write_result

BENCH_DIR = Path(__file__).resolve().parent
TIMEOUT = 300.0
# Seconds between looks at what is done: often enough for a run of seconds, rarely enough that
# the looking (a query of up to CHUNK ids) does not take the database's CPU from the worker.
POLL = 0.1
CHUNK = 500


def _cpu_seconds(pid: int) -> float:
    """CPU used by a worker and its pool: live children, and reaped ones through the parent."""
    import psutil

    try:
        main = psutil.Process(pid)
        total = sum(main.cpu_times()[:4])  # user, system, children_user, children_system
        for child in main.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(child.cpu_times()[:2])
    except psutil.NoSuchProcess:
        return 0.0
    return total


class Pending:
    """The ids not seen done yet; checked oldest first, a chunk at a time (runs finish ~FIFO)."""

    def __init__(self, ids: list[str], done_among: Callable[[list[str]], set[str]]):
        self.ids = ids
        self.done_among = done_among

    def poll(self) -> bool:
        while self.ids:
            chunk = self.ids[:CHUNK]
            done = self.done_among(chunk)
            self.ids = [task_id for task_id in self.ids if task_id not in done]
            if len(done) < len(chunk):
                return False
        return True


def _results_in_database(ids: list[str]) -> set[str]:
    from django_celery_results.models import TaskResult

    return set(
        TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").values_list(
            "task_id", flat=True
        )
    )


def _events_in_database(ids: list[str]) -> set[str]:
    from scheduler.models import TaskEvent

    return set(
        TaskEvent.objects.filter(task_id__in=ids, type="task.succeeded").values_list(
            "task_id", flat=True
        )
    )


def _results_in_redis(backend: Any, ids: list[str]) -> set[str]:
    values = backend.client.mget([backend.get_key_for_task(task_id) for task_id in ids])
    return {
        task_id for task_id, raw in zip(ids, values, strict=True) if raw and b'"SUCCESS"' in raw
    }


def _measure(
    label: str,
    *,
    tasks: int,
    send: Callable[[], str],
    trackers: list[Callable[[list[str]], set[str]]],
    pid: int,
) -> dict[str, Any]:
    cpu_before = _cpu_seconds(pid)
    started = time.perf_counter()
    ids = [send() for _ in range(tasks)]
    published = time.perf_counter() - started
    pending = [Pending(list(ids), done_among) for done_among in trackers]
    finished: list[float] = []
    for tracker in pending:
        while not tracker.poll():
            if time.perf_counter() - started > TIMEOUT:
                raise SystemExit(f"{label}: {len(tracker.ids)} run(s) unfinished after {TIMEOUT} s")
            time.sleep(POLL)
        finished.append(time.perf_counter() - started)
    elapsed = max(finished)
    cpu = _cpu_seconds(pid) - cpu_before
    return {
        "tasks": tasks,
        "seconds": round(elapsed, 3),
        "publish_seconds": round(published, 3),
        "tasks_per_second": round(tasks / elapsed, 1),
        "worker_cpu_ms_per_task": round(cpu / tasks * 1000, 3),
    }


def _warm_up(send: Callable[[], str], done: Callable[[list[str]], set[str]], count: int) -> None:
    tracker = Pending([send() for _ in range(count)], done)
    deadline = time.monotonic() + 60
    while not tracker.poll():
        if time.monotonic() > deadline:
            raise SystemExit("warm-up runs unfinished after 60 s")
        time.sleep(0.05)


def _beat_headers() -> dict[str, str]:
    # What beat puts on a schedule's run (scheduler/protocol.py): it was due a moment ago.
    now = datetime.now(UTC)
    return {
        "periodic_task_name": "bench: every second",
        "scheduled_for": (now - timedelta(milliseconds=5)).isoformat(),
        "published_at": now.isoformat(),
    }


def run_ours(tasks: int, *, periodic: bool = False) -> dict[str, Any]:
    from config.celery import app

    def send() -> str:
        headers = _beat_headers() if periodic else None
        return str(app.send_task("scheduler.ping", queue="default", headers=headers).id)

    hostname = f"bench-ours-{uuid.uuid4().hex[:6]}@localhost"
    with worker(hostname=hostname) as process:
        _warm_up(send, _results_in_database, 20)
        return _measure(
            "ours",
            tasks=tasks,
            send=send,
            trackers=[_results_in_database, _events_in_database],
            pid=process.pid,
        )


def run_baseline(tasks: int) -> dict[str, Any]:
    from config.redis_urls import redis_url_for_celery

    # Read by _bare_celery at import, here and in the worker it starts.
    os.environ["BENCH_BARE_REDIS"] = redis_url_for_celery(os.environ["REDIS_URL"])
    os.environ["BENCH_BARE_PREFIX"] = f"{os.environ['REDIS_KEY_PREFIX']}bare:"
    import _bare_celery

    bare = _bare_celery.make_app()

    def send() -> str:
        return str(bare.send_task(_bare_celery.NOOP, queue=_bare_celery.QUEUE).id)

    def answers() -> bool:
        try:
            bare.send_task(_bare_celery.NOOP, queue=_bare_celery.QUEUE).get(timeout=1)
        except Exception:
            return False
        return True

    def done(ids: list[str]) -> set[str]:
        return _results_in_redis(bare.backend, ids)

    hostname = f"bench-bare-{uuid.uuid4().hex[:6]}@localhost"
    path = os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")]))
    try:
        with worker(
            hostname=hostname,
            app="_bare_celery",
            queues=_bare_celery.QUEUE,
            env={"PYTHONPATH": path, "DJANGO_SETTINGS_MODULE": None},
            ready=answers,
        ) as process:
            _warm_up(send, done, 20)
            return _measure("baseline", tasks=tasks, send=send, trackers=[done], pid=process.pid)
    finally:
        bare.close()


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    middle = sorted(runs, key=lambda run: run["tasks_per_second"])[len(runs) // 2]
    return {**middle, "rounds": [run["tasks_per_second"] for run in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="pairs of runs, in alternating order; medians"
    )
    parser.add_argument(
        "--periodic", action="store_true", help="ours sent as beat sends a schedule's runs"
    )
    args = parser.parse_args()
    with environment():
        vendor = database_vendor()
        baselines: list[dict[str, Any]] = []
        ours: list[dict[str, Any]] = []
        for n in range(args.rounds):
            # Alternating who goes first cancels a machine getting faster or slower meanwhile.
            if n % 2 == 0:
                baselines.append(run_baseline(args.tasks))
                ours.append(run_ours(args.tasks, periodic=args.periodic))
            else:
                ours.append(run_ours(args.tasks, periodic=args.periodic))
                baselines.append(run_baseline(args.tasks))
    baseline, mine = _median(baselines), _median(ours)
    ratios = [
        round(o["tasks_per_second"] / b["tasks_per_second"], 3)
        for o, b in zip(ours, baselines, strict=True)
    ]
    ratio = round(statistics.median(ratios), 3)
    cpu_ratio = round(
        statistics.median(b["worker_cpu_ms_per_task"] for b in baselines)
        / statistics.median(o["worker_cpu_ms_per_task"] for o in ours),
        3,
    )
    print(
        f"pipeline: {args.tasks} no-op tasks x {args.rounds} round(s), database {vendor}, "
        f"prefork concurrency 2{', sent as periodic runs' if args.periodic else ''}"
    )
    print(f"{'':<10}{'tasks/s':>10}{'seconds':>10}{'worker cpu ms/task':>20}")
    for label, figures in (("baseline", baseline), ("ours", mine)):
        print(
            f"{label:<10}{figures['tasks_per_second']:>10}{figures['seconds']:>10}"
            f"{figures['worker_cpu_ms_per_task']:>20}"
        )
    print(f"ratio ours/baseline (median of rounds {ratios}): {ratio}x (goal >= 0.9x)")
    print(f"worker CPU per task, baseline/ours: {cpu_ratio}x")
    name = "pipeline" if vendor == "sqlite" else f"pipeline-{vendor}"
    if args.periodic:
        name += "-periodic"
    path = write_result(
        name,
        {
            "database": vendor,
            "periodic": args.periodic,
            "baseline": baseline,
            "ours": mine,
            "ratio": ratio,
            "ratios": ratios,
            "worker_cpu_ratio": cpu_ratio,
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
