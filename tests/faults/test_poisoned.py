"""Fault 7: poisoned runs, which always raise or outlive their time limit.

Promise: a run that always raises is retried as configured (agents: 3 retries), then stored
FAILURE with its reason; a run past its soft or hard time limit is stored FAILURE with the
limit named; and neither holds up the other runs of its queue. (A run past its hard limit is
killed by the worker: that needs a task that ignores the soft limit, and ours do not.)
"""

from __future__ import annotations

import socket
import time

import pytest
from django_celery_results.models import TaskResult

from agents.errors import MAX_RETRIES
from agents.services import agent_create, session_open
from agents.tasks import process_message
from scheduler.models import TaskEvent
from scheduler.system.tasks import ping, sleep
from tests.faults.conftest import publish, states_of
from tests.processes import start_worker, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PINGS = 60


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once this socket is closed


def _finished(task_ids: list[str]) -> bool:
    counts = states_of(task_ids)
    return counts["SUCCESS"] + counts["FAILURE"] == len(task_ids)


def test_poisoned_runs_fail_with_their_reason_and_never_block_their_queue(run_dir, fault_report):
    agent = agent_create(name="poisoned", brain="openai")
    session = session_open(agent=agent)
    worker = start_worker(
        log_dir=run_dir,
        queues=["default", "llm"],
        concurrency=2,
        env={
            # Every call to the model is refused: the run raises every time.
            "LLM_BASE_URL": f"http://127.0.0.1:{_closed_port()}/v1",
            "AGENT_RETRY_BASE": "0.2",
        },
    )
    try:
        raising = publish(
            process_message,
            [
                {"session_id": session.pk, "text": f"hello {i}", "idempotency_key": f"p7:{i}"}
                for i in range(3)
            ],
        )
        # Past its soft limit the run is told (SoftTimeLimitExceeded), and ends.
        soft = publish(sleep, [{"seconds": 6}] * 4, soft_time_limit=1, time_limit=3)
        started = time.monotonic()
        pings = publish(ping, [{}] * PINGS)
        wait_for(
            lambda: states_of(pings)["SUCCESS"] == PINGS,
            timeout=60,
            what="the pings queued behind the poisoned runs",
        )
        pings_done_after = time.monotonic() - started
        poisoned = raising + soft
        wait_for(lambda: _finished(poisoned), timeout=90, interval=0.5, what="the poisoned runs")
    finally:
        worker.stop()

    rows = {row.task_id: row for row in TaskResult.objects.filter(task_id__in=poisoned)}
    retried = {
        task_id: TaskEvent.objects.filter(task_id=task_id, type="task.retried").count()
        for task_id in raising
    }
    fault_report.record(
        "7 poisoned task",
        always_raising=len(raising),
        retries_each=sorted(set(retried.values())),
        past_time_limit=len(soft),
        stored_failure=sum(1 for row in rows.values() if row.status == "FAILURE"),
        other_runs_on_the_queue=PINGS,
        seconds_until_they_all_ran=round(pings_done_after, 2),
    )
    assert {rows[task_id].status for task_id in poisoned} == {"FAILURE"}, {
        group: [(rows[t].status, (rows[t].result or "")[:80]) for t in ids]
        for group, ids in (("raising", raising), ("past the limit", soft))
    }
    assert retried == dict.fromkeys(raising, MAX_RETRIES)
    for task_id in raising:
        assert "ExternalServiceError" in (rows[task_id].result or ""), rows[task_id].result
    for task_id in soft:
        assert "SoftTimeLimitExceeded" in (rows[task_id].result or ""), rows[task_id].result
    # Two processes, seven poisoned runs holding one for a second or more: the pings went by.
    assert pings_done_after < 30
