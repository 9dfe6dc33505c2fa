"""The dashboard's pages and summary with the Django test client: who may look, every panel with
the server's data, the buttons for who may use them, a task's own page, and the summary's slow
panels as JSON. The selectors behind the panels are test_panels.py's; the script, live, is tested
in a real browser: test_browser.py next to this file.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client

from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.live.events import event_record
from scheduler.models import QueuePause
from scheduler.observability.worker_heartbeats import forget_worker, record_worker_seen
from tests.clients import client_for
from tests.factories import TaskResultFactory, UserFactory, make_schedule
from tests.scheduler.dashboard.helpers import record_run

pytestmark = pytest.mark.django_db

FAILED_RESULT = json.dumps(
    {"exc_type": "ValueError", "exc_message": ["bad input"], "exc_module": "builtins"}
)


def _user(*codenames: str, staff: bool = True, superuser: bool = False) -> Any:
    user = UserFactory.create(is_staff=staff, is_superuser=superuser)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def queue_depth() -> Iterator[None]:
    """Two messages waiting in the default queue (not real tasks: no worker runs here)."""
    key = f"{settings.REDIS_KEY_PREFIX}default"
    get_redis().rpush(key, "one", "two")
    try:
        yield
    finally:
        get_redis().delete(key)


# --- Who may look ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/dashboard/", "/dashboard/tasks/some-task/"])
def test_it_sends_anonymous_visitors_to_the_admin_login(url):
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize(
    "make_user",
    [
        pytest.param(lambda: _user("view_dashboard", staff=False), id="not staff"),
        pytest.param(lambda: _user(), id="staff without the permission"),
    ],
)
@pytest.mark.parametrize(
    "url", ["/dashboard/", "/dashboard/tasks/some-task/", "/dashboard/summary.json"]
)
def test_it_forbids_whoever_may_not_watch(make_user, url):
    response = client_for(make_user()).get(url)

    assert response.status_code == 403


def test_its_summary_answers_anonymous_callers_with_json_not_a_login_page():
    response = Client().get("/dashboard/summary.json")

    assert response.status_code == 401
    assert response.json() == {"detail": "not signed in"}


@pytest.mark.parametrize(
    "make_user",
    [
        pytest.param(lambda: _user("view_dashboard"), id="staff with the permission"),
        pytest.param(lambda: _user(superuser=True), id="superuser"),
    ],
)
def test_it_lets_staff_with_the_permission_in(make_user):
    response = client_for(make_user()).get("/dashboard/")

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")


# --- The page ----------------------------------------------------------------------------------


def test_it_renders_every_panel_with_the_servers_data(queue_depth):
    make_schedule(
        name="nightly cleanup",
        task="scheduler.cleanup_results",
        schedule="daily at midnight",
        params={"days": 30},
    )
    now = datetime.now(tz=UTC)
    record_run("run-ok", at=now - timedelta(minutes=5), periodic_task_name="nightly cleanup")
    event_record(
        type="task.queued", task_id="run-waiting", task_name="scheduler.ping", state="PENDING"
    )
    TaskResultFactory.create(
        task_id="run-bad", task_name="scheduler.ping", status="FAILURE", result=FAILED_RESULT
    )
    record_worker_seen("w1@host")
    try:
        response = client_for(_user(superuser=True)).get("/dashboard/")
    finally:
        forget_worker("w1@host")

    assert response.status_code == 200
    html = response.content.decode()
    # Counters and chart
    assert re.search(r'data-counter="succeeded">1<', html)
    assert re.search(r'data-counter="queued">1<', html)
    assert re.search(r'data-counter="running">0<', html)
    assert 'id="throughput"' in html
    assert html.count('class="bar-ok"') == 60
    # Feed: one row per task, newest first, with its state, names, duration and worker
    feed = html[html.index('id="feed-body"') : html.index('id="feed-empty"')]
    assert feed.index('data-task-id="run-waiting"') < feed.index('data-task-id="run-ok"')
    assert 'data-task-id="run-ok" data-state="SUCCESS"' in feed
    assert "nightly cleanup" in feed
    assert "500 ms" in feed
    assert "w1@host" in feed
    assert 'href="/dashboard/tasks/run-ok/"' in feed
    # Periodic tasks, with their actions for a user who may use them
    periodic = html[html.index('id="periodic-body"') : html.index('id="upcoming-title"')]
    assert "nightly cleanup" in periodic
    assert "At 00:00" in periodic
    assert "100%" in periodic
    assert 'data-action="run"' in periodic
    assert 'data-action="pause"' in periodic
    # Upcoming
    upcoming = html[html.index('id="upcoming"') : html.index('id="failures-title"')]
    assert "All schedules" in upcoming
    assert "nightly cleanup" in upcoming
    # Failures, retryable
    failures = html[html.index('id="failures-body"') :]
    assert "ValueError: bad input" in failures
    assert 'data-action="retry" data-task-id="run-bad"' in failures
    # Workers and queues
    assert "w1@host" in html[html.index('id="workers"') :]
    assert re.search(r'title="[^"]*">default</td><td class="num">2</td>', html)
    # The script's starting point: the same data as JSON
    assert 'id="dashboard-config"' in html
    assert 'id="dashboard-initial"' in html


@pytest.mark.parametrize(
    ("codenames", "run_buttons", "retry_buttons"),
    [
        (("view_dashboard",), False, False),
        (("view_dashboard", "change_periodictask"), True, False),
        (("view_dashboard", "run_tasks"), False, True),
    ],
)
def test_it_shows_the_buttons_only_to_who_may_use_them(codenames, run_buttons, retry_buttons):
    make_schedule(name="pinger")
    TaskResultFactory.create(task_id="run-bad", status="FAILURE", result=FAILED_RESULT)

    html = client_for(_user(*codenames)).get("/dashboard/").content.decode()

    assert ('data-action="run"' in html) is run_buttons
    assert ('data-action="retry"' in html) is retry_buttons
    found = re.search(r'id="dashboard-config"[^>]*>(.*?)</script>', html)
    assert found is not None
    config = json.loads(found.group(1))
    assert config["can_change"] is run_buttons
    assert config["can_run"] is retry_buttons


@pytest.mark.parametrize(
    ("codenames", "stops", "queue_controls"),
    [
        (("view_dashboard",), False, False),
        (("view_dashboard", "run_tasks"), True, False),
        (("view_dashboard", "control_workers"), False, True),
    ],
)
def test_it_offers_revoke_terminate_and_queue_controls_only_to_who_may_use_them(
    codenames, stops, queue_controls
):
    now = datetime.now(tz=UTC)
    record_run("run-queued", at=now, end="")
    event_record(type="task.queued", task_id="run-waiting", state="PENDING", task_name="x.y")
    record_run("run-done", at=now)
    TaskResultFactory.create(task_id="run-retrying", status="RETRY", result=FAILED_RESULT)
    QueuePause.objects.create(queue="llm", paused_by_name="alice", note="model down")

    html = client_for(_user(*codenames)).get("/dashboard/").content.decode()

    feed = html[html.index('id="feed-body"') : html.index('id="feed-empty"')]
    failures = html[html.index('id="failures-body"') :]
    queues = html[html.index('id="queues"') : html.index('id="events-card"')]
    assert ('data-action="terminate" data-task-id="run-queued"' in feed) is stops
    assert ('data-action="revoke" data-task-id="run-waiting"' in feed) is stops
    done_row = re.search(r'<tr data-task-id="run-done".*?</tr>', feed, re.S)
    assert done_row is not None
    assert "data-action" not in done_row.group(0)
    assert ('data-action="revoke" data-task-id="run-retrying"' in failures) is stops
    assert "retrying" in failures
    assert re.search(r'data-queue="llm" data-paused>.*?badge-paused', queues, re.S)
    assert 'title="paused by alice: model down"' in queues
    assert ('data-action="queue-resume" data-queue="llm"' in queues) is queue_controls
    assert ('data-action="queue-pause" data-queue="default"' in queues) is queue_controls
    assert ('data-action="queue-purge" data-queue="default"' in queues) is queue_controls
    found = re.search(r'id="dashboard-config"[^>]*>(.*?)</script>', html)
    assert found is not None
    assert json.loads(found.group(1))["can_control_workers"] is queue_controls


@pytest.mark.parametrize(
    ("end", "control"),
    [("", "terminate"), ("succeeded", None)],
)
def test_its_task_page_offers_the_stop_its_state_allows(end, control):
    record_run("run-1", at=datetime.now(tz=UTC), end=end)

    html = client_for(_user(superuser=True)).get("/dashboard/tasks/run-1/").content.decode()

    shown = re.search(r'<span id="task-control">(.*?)</span>', html, re.S)
    assert shown is not None
    if control:
        assert f'data-action="{control}" data-task-id="run-1"' in shown.group(1)
    else:
        assert shown.group(1).strip() == ""


def test_it_escapes_what_tasks_report():
    evil = '<img src=x onerror="alert(1)">'
    event_record(
        type="task.failed", task_id="run-evil", task_name=evil, message=evil, state="FAILURE"
    )

    html = client_for(_user(superuser=True)).get("/dashboard/").content.decode()

    assert evil not in html
    assert "&lt;img src=x" in html


def test_it_offers_no_retry_for_a_task_outside_the_catalog():
    TaskResultFactory.create(
        task_id="run-bad", task_name="celery.backend_cleanup", status="FAILURE", result="{}"
    )

    html = client_for(_user(superuser=True)).get("/dashboard/").content.decode()

    assert 'data-action="retry"' not in html
    assert "not a catalog task" in html


# --- The task page -----------------------------------------------------------------------------


def test_its_task_page_shows_arguments_result_timeline_and_periodic_task():
    schedule = make_schedule(name="pinger")
    record_run(
        "run-ok",
        at=datetime.now(tz=UTC),
        periodic_task_name="pinger",
        task_kwargs=json.dumps(json.dumps({"seconds": 2})),
    )

    response = client_for(_user("view_dashboard")).get("/dashboard/tasks/run-ok/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="SUCCESS"' in html
    assert "&quot;seconds&quot;: 2" in html
    assert "&quot;pong&quot;: true" in html
    timeline = html[html.index('id="timeline"') :]
    assert re.findall(r"<strong>(task\.\w+)</strong>", timeline) == [
        "task.queued",
        "task.started",
        "task.succeeded",
    ]
    assert f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/" in html


def test_its_task_page_shows_a_failure_with_its_traceback_and_a_retry():
    TaskResultFactory.create(
        task_id="run-bad",
        status="FAILURE",
        result=FAILED_RESULT,
        traceback='Traceback (most recent call last):\n  File "x.py"\nValueError: bad input',
    )

    html = client_for(_user(superuser=True)).get("/dashboard/tasks/run-bad/").content.decode()

    assert "ValueError: bad input" in html[html.index('id="task-error"') :]
    assert "Traceback (most recent call last)" in html
    assert 'data-action="retry" data-task-id="run-bad"' in html


def test_its_task_page_shows_a_task_known_only_by_its_events():
    event_record(
        type="task.queued", task_id="a/queued:one", task_name="scheduler.ping", state="PENDING"
    )

    response = client_for(_user("view_dashboard")).get("/dashboard/tasks/a/queued:one/")

    assert response.status_code == 200
    assert b"No result stored yet" in response.content
    assert b'data-state="PENDING">queued<' in response.content


def test_its_task_page_answers_404_for_an_unknown_task():
    response = client_for(_user("view_dashboard")).get("/dashboard/tasks/no-such-task/")

    assert response.status_code == 404


# --- The summary -------------------------------------------------------------------------------


def test_its_summary_has_every_slow_panel_as_json(queue_depth):
    make_schedule(name="pinger", schedule="every 5 minutes")
    record_run(
        "run-ok", at=datetime.now(tz=UTC) - timedelta(minutes=2), periodic_task_name="pinger"
    )
    TaskResultFactory.create(task_id="run-bad", status="FAILURE", result=FAILED_RESULT)

    response = client_for(_user("view_dashboard")).get("/dashboard/summary.json")

    assert response.status_code == 200
    summary = response.json()
    assert summary["counts"] == {"succeeded": 1, "failed": 0, "running": 0, "queued": 0}
    assert len(summary["throughput"]) == 60
    assert sum(b["succeeded"] for b in summary["throughput"]) == 1
    [pinger] = summary["periodic"]["rows"]
    assert pinger["name"] == "pinger"
    assert pinger["schedule"] == "every 5 minutes"
    assert pinger["success_rate"] == 1.0
    assert pinger["last_status"] == "SUCCESS"
    assert pinger["next_run"]
    assert [row["name"] for row in summary["upcoming"]["rows"]] == ["pinger"]
    assert summary["failures"][0]["error"] == "ValueError: bad input"
    depths = {queue["name"]: queue["depth"] for queue in summary["cluster"]["queues"]}
    assert depths["default"] == 2
    assert "sparkline" not in pinger


def test_it_shows_the_beat_leader_standbys_and_missed_runs():
    redis: Any = get_redis()
    leader = {"at": time.time() - 2, "pid": 1, "hostname": "h", "id": "h:1:aa", "leader": "h:1:aa"}
    standby = {"at": time.time(), "pid": 2, "hostname": "h", "id": "h:2:bb", "role": "standby"}
    keys = {
        redis_key("scheduler:beat:heartbeat"): json.dumps(leader | {"entries": 7}),
        redis_key("scheduler:beat:standby:h:2:bb"): json.dumps(standby),
    }
    missed = redis_key("scheduler:beat:missed")
    # Only these: standbys other tests' beats left behind (they expire in a minute) go first.
    for key in redis.scan_iter(match=redis_key("scheduler:beat:standby:*")):
        redis.delete(key)
    redis.mset(keys)
    redis.hset(missed, "nightly <b>", json.dumps({"task_id": "t", "published_at": "then"}))
    try:
        client = client_for(_user("view_dashboard"))
        beat = client.get("/dashboard/summary.json").json()["cluster"]["beat"]
        page = client.get("/dashboard/").content.decode()
    finally:
        redis.delete(*keys, missed)

    assert beat["leader"] == "h:1:aa"
    assert beat["entries"] == 7
    assert beat["standbys"] == ["h:2:bb"]
    assert beat["missed"] == [{"name": "nightly <b>", "task_id": "t", "at": "then"}]
    assert "h:1:aa" in page
    assert "1 standby: h:2:bb" in page
    assert "Missed run: nightly &lt;b&gt;" in page


@pytest.mark.parametrize(
    ("codenames", "can_control"),
    [(("view_dashboard",), False), (("view_dashboard", "control_workers"), True)],
)
def test_it_offers_the_worker_controls_only_to_who_may_control_workers(codenames, can_control):
    record_worker_seen("w9@host")
    try:
        html = client_for(_user(*codenames)).get("/dashboard/").content.decode()
    finally:
        forget_worker("w9@host")

    found = re.search(r'id="dashboard-config"[^>]*>(.*?)</script>', html)
    assert found is not None
    assert json.loads(found.group(1))["can_control_workers"] is can_control
    # The script adds each worker's pool and buttons by its hostname.
    assert '<li data-hostname="w9@host">' in html
