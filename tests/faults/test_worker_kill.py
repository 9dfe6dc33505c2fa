"""Fault 1: workers killed (a pool child, then the whole worker) while 1,000 runs are in flight.

The runs are `agents.process_message`: each stores a user's message and the agent's reply, a
side effect that must happen once per message. Promise: no run lost, every run ends SUCCESS,
no message stored or answered twice.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from django.db.models import Count

from agents.models import Message
from agents.services import agent_create, session_open
from agents.tasks import process_message
from scheduler.models import TaskEvent
from tests.faults.conftest import publish, states_of, succeeded
from tests.processes import start_worker, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUNS = 1000
SESSIONS = 100  # ten messages each: under the summary threshold, so no other work is queued
# The killed worker's messages come back after this (and the next sweep, every 10 s).
VISIBILITY_TIMEOUT = "12"


def _pool_child_running_a_task(worker_pid: int) -> psutil.Process:
    children = psutil.Process(worker_pid).children()
    assert children, "the worker has no pool processes"
    # The busiest child is the one most likely inside a run right now.
    return max(children, key=lambda child: child.cpu_times().user)


def test_it_loses_no_run_and_applies_none_twice_when_workers_are_killed(run_dir, fault_report):
    agent = agent_create(name="fault agent")
    sessions = [session_open(agent=agent) for _ in range(SESSIONS)]
    task_ids = publish(
        process_message,
        (
            {
                "session_id": sessions[i % SESSIONS].pk,
                "text": f"message {i}",
                "idempotency_key": f"fault1:{i}",
            }
            for i in range(RUNS)
        ),
    )
    env = {"CELERY_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT}
    started = time.monotonic()

    worker = start_worker(log_dir=run_dir, queues=["llm"], concurrency=2, env=env)
    try:
        wait_for(lambda: succeeded(task_ids) >= 150, timeout=90, what="150 runs done")
        child = _pool_child_running_a_task(worker.process.pid)
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: succeeded(task_ids) >= 500, timeout=90, what="500 runs done")
        worker.process.send(signal.SIGKILL)  # the main process and its pool, all at once
        assert worker.process.wait(10), "the worker survived SIGKILL"
        done_at_kill = succeeded(task_ids)
    finally:
        worker.stop()

    replacement = start_worker(log_dir=run_dir, queues=["llm"], concurrency=2, env=env)
    try:
        wait_for(
            lambda: succeeded(task_ids) == RUNS,
            timeout=150,
            interval=0.5,
            what=f"all {RUNS} runs to succeed (states: {dict(states_of(task_ids))})",
        )
    finally:
        replacement.stop()
    elapsed = time.monotonic() - started
    # Runs a killed process had claimed, taken over by another (scheduler/worker/deduplication.py).
    taken_over = sum(
        path.read_text(errors="replace").count("which died while running it")
        for path in (worker.log_path, replacement.log_path)
    )

    counts = states_of(task_ids)
    users = Message.objects.filter(session__agent=agent, role=Message.Role.USER)
    replies = Message.objects.filter(session__agent=agent, role=Message.Role.ASSISTANT)
    stored_twice = users.values("idempotency_key").annotate(n=Count("id")).filter(n__gt=1).count()
    answered_twice = replies.values("reply_to").annotate(n=Count("id")).filter(n__gt=1).count()
    succeeded_twice = (
        TaskEvent.objects.filter(task_id__in=task_ids, type="task.succeeded")
        .values("task_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    dropped = TaskEvent.objects.filter(task_id__in=task_ids, type="task.duplicate").count()
    fault_report.record(
        "1 worker killed mid-task",
        runs=RUNS,
        done_when_killed=done_at_kill,
        lost=RUNS - counts["SUCCESS"],
        not_success=RUNS - counts["SUCCESS"],
        messages_stored_twice=stored_twice,
        messages_answered_twice=answered_twice,
        runs_completed_twice=succeeded_twice,
        runs_interrupted_and_taken_over=taken_over,
        duplicate_deliveries_dropped=dropped,
        seconds=round(elapsed, 1),
    )
    assert counts["SUCCESS"] == RUNS
    assert users.count() == RUNS
    assert replies.count() == RUNS
    assert stored_twice == answered_twice == succeeded_twice == 0
    assert taken_over >= 1, "no run was interrupted: the kills missed"
