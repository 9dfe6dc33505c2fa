"""Wait latency: a task finishes -> the answer to a client waiting on it arrives.

ours:     `GET /api/tasks/{id}/?wait=5` on a real daphne: the request waits on the channel-layer
          group the task's finished event is sent to (scheduler/api/waiting.py).
baseline: `AsyncResult(id).get()` on the database result backend, which reads the row every
          0.5 s (django-celery-results' DatabaseBackend).
Each run sends `scheduler.sleep` (--sleep s plus up to 0.5 s at random, so that the client is
waiting before it ends and the baseline's polling is not in step with it) and waits for it at
once; latency = answer received - the run's `date_done` (stored by the worker when it finished;
same machine, same clock). Runs alternate between the two. Goal (issue 4):
ours p50 <= 5 ms. Prints both and their ratio (baseline / ours: how many times sooner);
writes benchmarks/results/wait_latency.json.

    .venv/bin/python benchmarks/wait_latency.py [--runs 50] [--sleep 0.3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from _harness import environment, percentile, staff_user, web, worker, write_result

GOAL_P50_MS = 5.0
TASK = "scheduler.sleep"


def _finished_at(task_id: str) -> float:
    from django_celery_results.models import TaskResult

    row = TaskResult.objects.get(task_id=task_id)
    assert row.status == "SUCCESS", row.status
    return row.date_done.timestamp()


def _send(sleep: float) -> str:
    from config.celery import app

    return str(app.send_task(TASK, kwargs={"seconds": sleep}, queue="default").id)


def wait_through_api(base_url: str, token: str, sleep: float) -> tuple[str, float]:
    host, port = base_url.removeprefix("http://").split(":")
    task_id = _send(sleep)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(
            "GET", f"/api/tasks/{task_id}/?wait=5", headers={"Authorization": f"Token {token}"}
        )
        response = connection.getresponse()
        body = response.read()
        answered = time.time()
    finally:
        connection.close()
    state = json.loads(body).get("state")
    if response.status != 200 or state != "SUCCESS":
        raise SystemExit(f"GET ?wait answered {response.status} {body[:200]!r}")
    return task_id, answered


def wait_with_async_result(sleep: float) -> tuple[str, float]:
    from celery.result import AsyncResult

    from config.celery import app

    task_id = _send(sleep)
    AsyncResult(task_id, app=app).get(timeout=30)
    return task_id, time.time()


def _summary(latencies: list[float]) -> dict[str, Any]:
    return {
        "runs": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p90_ms": round(percentile(latencies, 90), 3),
        "max_ms": round(max(latencies), 3),
        "mean_ms": round(statistics.fmean(latencies), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="runs of each")
    parser.add_argument("--sleep", type=float, default=0.3, help="seconds each task runs")
    args = parser.parse_args()
    with environment():
        from rest_framework.authtoken.models import Token

        token = str(Token.objects.get_or_create(user=staff_user())[0].key)
        waits: dict[str, Callable[[float], tuple[str, float]]] = {}
        done: dict[str, list[tuple[str, float]]] = {"ours": [], "baseline": []}
        hostname = f"bench-wait-{uuid.uuid4().hex[:6]}@localhost"
        # The API's per-user throttle is for people, not for this loop.
        with worker(hostname=hostname), web(env={"API_THROTTLE_RATE": "100000/minute"}) as url:
            waits["ours"] = lambda jitter: wait_through_api(url, token, args.sleep + jitter)
            waits["baseline"] = lambda jitter: wait_with_async_result(args.sleep + jitter)
            for name in waits:  # warm-up: connections, first queries
                waits[name](0)
            for _ in range(args.runs):
                jitter = random.uniform(0, 0.5)  # noqa: S311  (not a secret)
                for name, wait in waits.items():
                    done[name].append(wait(jitter))
        latencies = {
            name: [(answered - _finished_at(task_id)) * 1000 for task_id, answered in runs]
            for name, runs in done.items()
        }
    ours, baseline = _summary(latencies["ours"]), _summary(latencies["baseline"])
    ratio = round(baseline["p50_ms"] / ours["p50_ms"], 1) if ours["p50_ms"] > 0 else None
    met = ours["p50_ms"] <= GOAL_P50_MS
    print(f"wait latency (task finished -> answer), {args.runs} runs each")
    print(f"{'':<10}{'p50 ms':>10}{'p90 ms':>10}{'max ms':>10}")
    for label, figures in (("baseline", baseline), ("ours", ours)):
        print(f"{label:<10}{figures['p50_ms']:>10}{figures['p90_ms']:>10}{figures['max_ms']:>10}")
    print(
        f"ratio baseline/ours (p50): {ratio}x sooner; goal ours p50 <= {GOAL_P50_MS:g} ms: "
        f"{'met' if met else 'NOT met'}"
    )
    path = write_result(
        "wait_latency",
        {
            "baseline": baseline,
            "ours": ours,
            "ratio_p50": ratio,
            "goal": {"p50_ms": GOAL_P50_MS, "met": met},
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
