"""Fault 6: PostgreSQL restarts under a worker busy with database work, and beat.

Promise: runs that meet the outage retry and finish (their results are stored once the
database is back), and beat keeps its schedule: it publishes again once the database answers.
Needs the suite's own PostgreSQL server (`make faults`, tests/faults/postgres.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from agents.models import Message
from agents.services import agent_create, session_open
from agents.tasks import process_message
from scheduler.models import TaskEvent
from scheduler.services import schedule_create
from tests.faults.conftest import publish, states_of, succeeded
from tests.faults.postgres import pg_ctl
from tests.processes import start_beat, start_worker, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUNS = 300
DOWN_FOR = 3.0


def _fresh() -> None:
    # The test's own connection died with the server: the next query opens a new one.
    connection.close()


def _succeeded_fresh(task_ids: list[str]) -> int:
    _fresh()
    return succeeded(task_ids)


def _tick_times() -> list[float]:
    _fresh()
    return [
        at.timestamp()
        for at in TaskEvent.objects.filter(
            periodic_task_name="pg tick", type="task.queued"
        ).values_list("created_at", flat=True)
    ]


def test_runs_retry_and_finish_and_beat_keeps_its_schedule_when_postgres_restarts(
    pgdata: Path, run_dir, fault_report
):
    agent = agent_create(name="pg fault agent")
    sessions = [session_open(agent=agent) for _ in range(RUNS // 10)]
    schedule_create(name="pg tick", task="scheduler.ping", schedule="every 1 second")
    worker = start_worker(
        log_dir=run_dir, queues=["default", "llm"], concurrency=2, env={"AGENT_RETRY_BASE": "1"}
    )
    beat = start_beat(log_dir=run_dir)
    try:
        # Beat first: how long it takes to start is not what is measured, and a worker that is
        # through the runs before beat's first ticks would leave the outage nothing to hit.
        wait_for(lambda: len(_tick_times()) >= 2, timeout=30, what="beat's first runs")
        task_ids = publish(
            process_message,
            (
                {
                    "session_id": sessions[i % len(sessions)].pk,
                    "text": f"message {i}",
                    "idempotency_key": f"fault6:{i}",
                }
                for i in range(RUNS)
            ),
        )
        wait_for(lambda: succeeded(task_ids) >= 50, timeout=60, what="50 runs done")

        down_at = time.time()
        pending_at_outage = RUNS - succeeded(task_ids)
        _fresh()
        try:
            pg_ctl(pgdata, "-m", "fast", "stop")
            time.sleep(DOWN_FOR)
        finally:
            pg_ctl(pgdata, "-l", str(pgdata.parent / "server.log"), "start")
        back_at = time.time()
        _fresh()

        wait_for(
            lambda: _succeeded_fresh(task_ids) == RUNS,
            timeout=120,
            interval=0.5,
            what=f"every run to succeed ({dict(states_of(task_ids))})",
        )
        wait_for(
            lambda: sum(1 for at in _tick_times() if at > back_at) >= 3,
            timeout=60,
            what="beat's runs after the restart",
        )
    finally:
        beat.stop()
        worker.stop()
        _fresh()

    ticks = _tick_times()
    before = max(at for at in ticks if at < down_at)
    after = min(at for at in ticks if at > back_at)
    retried = TaskEvent.objects.filter(task_id__in=task_ids, type="task.retried").count()
    answered_twice = (
        Message.objects.filter(session__agent=agent, role=Message.Role.ASSISTANT)
        .values("reply_to")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    counts = states_of(task_ids)
    fault_report.record(
        "6 PostgreSQL restarted",
        runs=RUNS,
        down_s=round(back_at - down_at, 1),
        lost=RUNS - counts["SUCCESS"],
        runs_pending_at_the_outage=pending_at_outage,
        runs_retried=retried,
        messages_answered_twice=answered_twice,
        beat_gap_s=round(after - before, 1),
        beat_publishing_again_after_s=round(after - back_at, 1),
    )
    assert pending_at_outage > 0, "every run ended before the outage: it hit nothing"
    assert counts["SUCCESS"] == RUNS
    assert answered_twice == 0
