"""The web host cut off from Redis alone (it still reaches PostgreSQL, and its users reach it),
for 15 s, then healed, while a browser watches the dashboard.

Promise: the API answers every call during the cut, quickly and cleanly: a run asked for is
queued (202) or refused with a 503 and a JSON body naming the outage, never a 500 and never a
hang; after healing the dashboard's live connection comes back by itself and shows a new run
live, without a reload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from scheduler.observability.worker_heartbeats import workers_seen_within
from tests.browser import (
    RECONNECT_TIMEOUT,
    LiveServer,
    off_the_loop,
    post_task,
    signed_in_page,
)
from tests.cluster.conftest import Cluster, RecordFigures, StartOn, host_worker_argv
from tests.processes import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

PASSWORD = "a cluster's password"
CUT_FOR = 15.0
# An API call during the cut answers within this (the publisher's retries for 5 s, each try
# bounded by the broker's 2 s socket timeouts).
ANSWER_WITHIN = 10.0


def _post_task(server: LiveServer, token: str) -> tuple[int, Any, float]:
    started = time.monotonic()
    status, body = post_task(server, token)
    return status, body, time.monotonic() - started


@pytest.fixture
def web(cluster: Cluster, run_dir: Any) -> Iterator[LiveServer]:
    server = LiveServer(log_dir=run_dir, host=cluster.hosts["web"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_web_host_cut_off_from_redis_answers_503_and_its_pages_reconnect(
    cluster: Cluster,
    start_on: StartOn,
    web: LiveServer,
    browser: Any,
    record_figures: RecordFigures,
) -> None:
    worker_host = cluster.hosts["worker1"]
    start_on(worker_host, "worker", host_worker_argv(queues=["default"]))

    def setup() -> str:
        user = get_user_model()._default_manager.create_superuser(
            "admin", "a@example.com", PASSWORD
        )
        return str(Token.objects.create(user=user).key)

    token = off_the_loop(setup)
    wait_for(
        lambda: f"worker@{worker_host.name}" in off_the_loop(workers_seen_within, 30),
        timeout=90,
        what="the worker host's worker",
    )
    page, errors = signed_in_page(browser, web, "/dashboard/", username="admin", password=PASSWORD)
    status, body, _ = _post_task(web, token)
    assert status == 202, body

    redis = cluster.redis_address
    cluster.cut_route(cluster.hosts["web"], redis)
    cut_at = time.monotonic()
    answers: list[tuple[int, Any, float]] = []
    try:
        while time.monotonic() - cut_at < CUT_FOR:
            answers.append(_post_task(web, token))
    finally:
        cluster.heal_route(cluster.hosts["web"], redis)
    healed_at = time.monotonic()

    statuses = [status for status, _, _ in answers]
    assert answers
    assert set(statuses) <= {202, 503}, answers
    assert all(isinstance(body, dict) for _, body, _ in answers), answers
    slowest = max(took for _, _, took in answers)
    assert slowest < ANSWER_WITHIN, answers
    refused = [body for status, body, _ in answers if status == 503]
    assert refused, "no call was refused while the web host could not reach Redis"

    # Live again by itself, and a run queued now shows on the page without a reload.
    page.wait_for_selector("#connection[data-state=live]", timeout=RECONNECT_TIMEOUT)
    live_after = time.monotonic() - healed_at
    status, body, _ = _post_task(web, token)
    assert status == 202, body
    row = page.locator(f'#feed-body tr[data-task-id="{body["task_id"]}"][data-state="SUCCESS"]')
    row.wait_for(state="attached", timeout=RECONNECT_TIMEOUT)
    assert errors == []
    record_figures(
        "web_host_cut_from_redis",
        cut_for_seconds=CUT_FOR,
        api_calls_during_cut=len(answers),
        refused_503=statuses.count(503),
        accepted_202=statuses.count(202),
        other_statuses=len([s for s in statuses if s not in (202, 503)]),
        slowest_answer_seconds=round(slowest, 1),
        dashboard_live_again_after_heal_seconds=round(live_after, 1),
        page_errors=len(errors),
    )
