"""The fault suite's fixtures: restartable servers, bulk publishing, and the figures report.

Run it alone with `make faults` (its own PostgreSQL server and embedded Redis, both of which
its tests restart: tests/faults/postgres.py). Each test records its figures with
`fault_report.record(...)`; they are printed at the end of the run and written to
benchmarks/results/faults.json, which docs/reliability.md quotes.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from django_celery_results.models import TaskResult

from config.celery import app
from tests import conftest as root_conftest
from tests.processes import BASE_DIR, RedisServer

RESULTS = BASE_DIR / "benchmarks" / "results" / "faults.json"


class FaultReport:
    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}

    def record(self, fault: str, **figures: Any) -> None:
        self.figures[fault] = figures
        print(f"\n[fault] {fault}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))

    def write(self) -> None:
        if not self.figures:
            return
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        previous: dict[str, Any] = {}
        if RESULTS.exists():
            try:
                previous = json.loads(RESULTS.read_text()).get("faults", {})
            except ValueError:
                previous = {}
        RESULTS.write_text(
            json.dumps(
                {
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "database": connection.vendor,
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                    "faults": {**previous, **self.figures},
                },
                indent=2,
            )
        )


_report = FaultReport()


@pytest.fixture(scope="session")
def fault_report() -> Iterator[FaultReport]:
    yield _report
    _report.write()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _report.figures:
        return
    terminalreporter.section("fault suite figures")
    for fault, figures in _report.figures.items():
        terminalreporter.write_line(
            f"{fault}: " + ", ".join(f"{key}={value}" for key, value in figures.items())
        )


@pytest.fixture
def embedded_redis() -> RedisServer:
    """This run's Redis server, to restart; only when the run has its own (`make faults`)."""
    if root_conftest.EMBEDDED_REDIS is None:
        pytest.skip("this run uses a shared Redis (REDIS_URL): run `make faults` to restart one")
    return root_conftest.EMBEDDED_REDIS


@pytest.fixture
def pgdata() -> Path:
    """The cluster of this run's own PostgreSQL server, to restart (tests/faults/postgres.py)."""
    path = os.environ.get("FAULTS_PGDATA")
    if not path or connection.vendor != "postgresql":
        pytest.skip("no PostgreSQL server of the suite's own: run `make faults`")
    return Path(path)


def publish(task: Any, calls: Iterable[dict[str, Any]], **options: Any) -> list[str]:
    """Publish one message per kwargs dict over one connection; their task ids."""
    ids = []
    with app.producer_or_acquire() as producer:
        for kwargs in calls:
            ids.append(str(task.apply_async(kwargs=kwargs, producer=producer, **options).id))
    return ids


def states_of(task_ids: list[str]) -> Counter[str]:
    """How many of these runs are stored in each state (PENDING: no row yet)."""
    counts: Counter[str] = Counter()
    for start in range(0, len(task_ids), 500):
        rows = (
            TaskResult.objects.filter(task_id__in=task_ids[start : start + 500])
            .values("status")
            .annotate(n=Count("id"))
        )
        for row in rows:
            counts[row["status"]] += row["n"]
    counts["PENDING"] = len(task_ids) - sum(counts.values())
    return counts


def succeeded(task_ids: list[str]) -> int:
    return states_of(task_ids)["SUCCESS"]
