"""Task round trip: send N no-op tasks, time until the last result is stored.

ours:     the product's path: results stored in the database (django-celery-results).
baseline: bare Celery wiring: the same worker settings, results in Redis.
Prints both rates and their ratio (ours / baseline); writes benchmarks/results/roundtrip.json.

    .venv/bin/python benchmarks/roundtrip.py [--tasks 300]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from _harness import environment, worker, write_result


def _stored_in_database(ids: list[str]) -> int:
    from django_celery_results.models import TaskResult

    return TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").count()


def _stored_in_redis(backend: Any, ids: list[str]) -> int:
    # SUCCESS only: with task_track_started the key holds STARTED first.
    client = backend.client
    return sum(
        sum(
            1
            for raw in client.mget([backend.get_key_for_task(task_id) for task_id in chunk])
            if raw and b'"SUCCESS"' in raw
        )
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500))
    )


def _run(label: str, *, tasks: int, backend: str | None) -> dict[str, float]:
    from celery import Celery

    from config.celery import app

    env: dict[str, str | None] = {"CELERY_RESULT_BACKEND": backend} if backend else {}
    hostname = f"bench-{label}-{uuid.uuid4().hex[:6]}@localhost"
    with worker(hostname=hostname, env=env):
        stored: Callable[[list[str]], int] = _stored_in_database
        if backend:
            # Not the current app: shared tasks must keep resolving to ours.
            baseline = Celery("baseline", backend=backend, set_as_current=False)
            stored = partial(_stored_in_redis, baseline.backend)
        started = time.perf_counter()
        ids = [app.send_task("scheduler.ping", queue="default").id for _ in range(tasks)]
        sent = time.perf_counter() - started
        deadline = started + 300
        while stored(ids) < tasks:
            if time.perf_counter() > deadline:
                raise SystemExit(f"{label}: results missing after 300 s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
    return {
        "tasks": tasks,
        "seconds": round(elapsed, 3),
        "publish_seconds": round(sent, 3),
        "tasks_per_second": round(tasks / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    args = parser.parse_args()
    with environment():
        from django.conf import settings

        redis_backend = settings.REDIS_URL
        baseline = _run("baseline", tasks=args.tasks, backend=redis_backend)
        ours = _run("ours", tasks=args.tasks, backend=None)
    ratio = round(ours["tasks_per_second"] / baseline["tasks_per_second"], 3)
    print(f"{'':<10}{'tasks/s':>10}{'seconds':>10}")
    print(f"{'baseline':<10}{baseline['tasks_per_second']:>10}{baseline['seconds']:>10}")
    print(f"{'ours':<10}{ours['tasks_per_second']:>10}{ours['seconds']:>10}")
    print(f"ratio ours/baseline: {ratio}x")
    path = write_result("roundtrip", {"baseline": baseline, "ours": ours, "ratio": ratio})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
