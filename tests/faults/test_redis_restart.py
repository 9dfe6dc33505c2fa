"""Fault 2: Redis restarts while the web server, a worker and beat run, and a browser watches.

Promise: web, worker and beat reconnect by themselves; a run asked for during the outage is
either queued (the publisher retries for about 5 s) and then runs, or refused to the caller
with a 503 and a JSON body, never accepted and dropped; the dashboard reconnects and shows
runs live again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django_celery_results.models import TaskResult
from rest_framework.authtoken.models import Token

from scheduler.models import TaskEvent
from scheduler.services import schedule_create
from tests.browser import RECONNECT_TIMEOUT, LiveServer, off_the_loop, post_task, signed_in_page
from tests.faults.conftest import states_of
from tests.processes import RedisServer, RunningProcess, start_beat, start_worker, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a fault's password"
DOWN_FOR = 3.0  # seconds Redis stays down
CALLS = 12  # API calls made while it is down, one every DOWN_FOR / CALLS seconds


@pytest.fixture
def stack(run_dir) -> Any:
    started: list[RunningProcess] = []
    server = LiveServer(log_dir=run_dir)
    try:
        started.append(start_worker(log_dir=run_dir, queues=["default"], concurrency=2))
        started.append(start_beat(log_dir=run_dir))
        server.start()
        yield server
    finally:
        server.stop()
        for process in started:
            process.stop()


def test_web_workers_beat_and_dashboard_come_back_after_redis_restarts(
    embedded_redis: RedisServer, stack: LiveServer, browser, fault_report
):
    server = stack

    # Playwright runs an event loop in this thread: the ORM is used from another one.
    def setup() -> str:
        user = get_user_model()._default_manager.create_superuser(
            "admin", "a@example.com", PASSWORD
        )
        schedule_create(name="redis tick", task="scheduler.ping", schedule="every 1 second")
        return str(Token.objects.create(user=user).key)

    token = off_the_loop(setup)
    wait_for(lambda: off_the_loop(_ticks_done) >= 2, timeout=30, what="beat's runs")
    page, errors = signed_in_page(
        browser, server, "/dashboard/", username="admin", password=PASSWORD
    )

    # Calls made while Redis is down, from another thread (each may wait for the publisher).
    answers: list[tuple[int, Any]] = []

    def call_during_outage() -> None:
        for _ in range(CALLS):
            answers.append(post_task(server, token))
            time.sleep(DOWN_FOR / CALLS)

    outage_started = time.time()
    embedded_redis.stop()
    try:
        caller = threading.Thread(target=call_during_outage, daemon=True)
        caller.start()
        time.sleep(DOWN_FOR)
    finally:
        embedded_redis.start()
    back_at = time.time()
    caller.join(timeout=120)
    assert not caller.is_alive(), "an API call hung"

    accepted = [body["task_id"] for status, body in answers if status == 202]
    refused = [(status, body) for status, body in answers if status != 202]
    # Refusals name the outage, as JSON with a 503.
    assert all(status == 503 and isinstance(body, dict) for status, body in refused), refused

    # Worker and beat: what was accepted runs, and beat's runs go on.
    wait_for(
        lambda: off_the_loop(states_of, accepted)["SUCCESS"] == len(accepted),
        timeout=60,
        what=f"the runs accepted during the outage ({off_the_loop(states_of, accepted)})",
    )
    wait_for(
        lambda: off_the_loop(_ticks_after, back_at) >= 3,
        timeout=60,
        what="beat's runs after the restart",
    )
    beat_back_after = off_the_loop(_first_tick_after, back_at) - back_at

    # The dashboard: live again, and a run queued now shows up on it without a reload.
    page.wait_for_selector("#connection[data-state=live]", timeout=RECONNECT_TIMEOUT)
    status, body = post_task(server, token)
    assert status == 202, body
    row = page.locator(f'#feed-body tr[data-task-id="{body["task_id"]}"][data-state="SUCCESS"]')
    row.wait_for(state="attached", timeout=RECONNECT_TIMEOUT)
    dashboard_back_after = time.time() - back_at
    lost = len(accepted) - off_the_loop(states_of, accepted)["SUCCESS"]

    fault_report.record(
        "2 Redis restarted",
        down_s=round(back_at - outage_started, 1),
        calls_during_outage=len(answers),
        accepted=len(accepted),
        refused_503=len(refused),
        accepted_then_lost=lost,
        beat_runs_again_after_s=round(beat_back_after, 1),
        dashboard_live_again_within_s=round(dashboard_back_after, 1),
        page_errors=len(errors),
    )
    assert lost == 0
    assert errors == []


def _ticks_done() -> int:
    return TaskResult.objects.filter(periodic_task_name="redis tick", status="SUCCESS").count()


def _tick_times() -> list[float]:
    return [
        row.created_at.timestamp()
        for row in TaskEvent.objects.filter(periodic_task_name="redis tick", type="task.queued")
    ]


def _ticks_after(moment: float) -> int:
    return sum(1 for at in _tick_times() if at > moment)


def _first_tick_after(moment: float) -> float:
    return min(at for at in _tick_times() if at > moment)
