"""The dashboard's pages and summary with the Django test client, and the selectors behind them
with time frozen. Its script, live, is tested in a real browser: test_browser.py next to this
file.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client

from scheduler import selectors
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.dashboard.views import heat_level
from scheduler.live.events import event_record
from scheduler.observability.worker_heartbeats import forget_worker, record_worker_seen
from scheduler.templatetags.dashboard import duration
from tests.factories import TaskResultFactory, UserFactory, make_schedule, stored_run

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 5, 22, 10, tzinfo=UTC)  # a Wednesday
FAILED_RESULT = json.dumps(
    {"exc_type": "ValueError", "exc_message": ["bad input"], "exc_module": "builtins"}
)


def _user(*codenames: str, staff: bool = True, superuser: bool = False) -> Any:
    user = UserFactory.create(is_staff=staff, is_superuser=superuser)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _run(
    task_id: str,
    *,
    at: datetime,
    end: str = "succeeded",
    task_kwargs: str = '"{}"',
    **fields: Any,
) -> None:
    """The events of one run: queued, started, and how it ended ('' for still running); and
    the result a worker stores when it ends."""
    fields.setdefault("task_name", "scheduler.ping")
    event_record(type="task.queued", task_id=task_id, state="PENDING", at=at, **fields)
    event_record(
        type="task.started",
        task_id=task_id,
        state="STARTED",
        worker="w1@host",
        at=at + timedelta(seconds=1),
        **fields,
    )
    if end:
        state = {"succeeded": "SUCCESS", "failed": "FAILURE", "skipped": "SKIPPED"}[end]
        duration = fields.pop("duration", 0.5)
        event_record(
            type=f"task.{end}",
            task_id=task_id,
            state=state,
            worker="w1@host",
            duration=duration,
            at=at + timedelta(seconds=2),
            **fields,
        )
        # And its stored result, as the worker writes it.
        started = at + timedelta(seconds=1)
        stored_run(
            task_id,
            status=state,
            started=started,
            done=started + timedelta(seconds=duration),
            worker="w1@host",
            task_kwargs=task_kwargs,
            **fields,
        )


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
    response = _client(make_user()).get(url)

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
    response = _client(make_user()).get("/dashboard/")

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
    _run("run-ok", at=now - timedelta(minutes=5), periodic_task_name="nightly cleanup")
    event_record(
        type="task.queued", task_id="run-waiting", task_name="scheduler.ping", state="PENDING"
    )
    TaskResultFactory.create(
        task_id="run-bad", task_name="scheduler.ping", status="FAILURE", result=FAILED_RESULT
    )
    record_worker_seen("w1@host")
    try:
        response = _client(_user(superuser=True)).get("/dashboard/")
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
    assert 'data-action="disable"' in periodic
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

    html = _client(_user(*codenames)).get("/dashboard/").content.decode()

    assert ('data-action="run"' in html) is run_buttons
    assert ('data-action="retry"' in html) is retry_buttons
    found = re.search(r'id="dashboard-config"[^>]*>(.*?)</script>', html)
    assert found is not None
    config = json.loads(found.group(1))
    assert config["can_change"] is run_buttons
    assert config["can_run"] is retry_buttons


def test_it_escapes_what_tasks_report():
    evil = '<img src=x onerror="alert(1)">'
    event_record(
        type="task.failed", task_id="run-evil", task_name=evil, message=evil, state="FAILURE"
    )

    html = _client(_user(superuser=True)).get("/dashboard/").content.decode()

    assert evil not in html
    assert "&lt;img src=x" in html


def test_it_offers_no_retry_for_a_task_outside_the_catalog():
    TaskResultFactory.create(
        task_id="run-bad", task_name="celery.backend_cleanup", status="FAILURE", result="{}"
    )

    html = _client(_user(superuser=True)).get("/dashboard/").content.decode()

    assert 'data-action="retry"' not in html
    assert "not a catalog task" in html


# --- The task page -----------------------------------------------------------------------------


def test_its_task_page_shows_arguments_result_timeline_and_periodic_task():
    schedule = make_schedule(name="pinger")
    _run(
        "run-ok",
        at=datetime.now(tz=UTC),
        periodic_task_name="pinger",
        task_kwargs=json.dumps(json.dumps({"seconds": 2})),
    )

    response = _client(_user("view_dashboard")).get("/dashboard/tasks/run-ok/")

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

    html = _client(_user(superuser=True)).get("/dashboard/tasks/run-bad/").content.decode()

    assert "ValueError: bad input" in html[html.index('id="task-error"') :]
    assert "Traceback (most recent call last)" in html
    assert 'data-action="retry" data-task-id="run-bad"' in html


def test_its_task_page_shows_a_task_known_only_by_its_events():
    event_record(
        type="task.queued", task_id="a/queued:one", task_name="scheduler.ping", state="PENDING"
    )

    response = _client(_user("view_dashboard")).get("/dashboard/tasks/a/queued:one/")

    assert response.status_code == 200
    assert b"No result stored yet" in response.content
    assert b'data-state="PENDING">queued<' in response.content


def test_its_task_page_answers_404_for_an_unknown_task():
    response = _client(_user("view_dashboard")).get("/dashboard/tasks/no-such-task/")

    assert response.status_code == 404


# --- The summary -------------------------------------------------------------------------------


def test_its_summary_has_every_slow_panel_as_json(queue_depth):
    make_schedule(name="pinger", schedule="every 5 minutes")
    _run("run-ok", at=datetime.now(tz=UTC) - timedelta(minutes=2), periodic_task_name="pinger")
    TaskResultFactory.create(task_id="run-bad", status="FAILURE", result=FAILED_RESULT)

    response = _client(_user("view_dashboard")).get("/dashboard/summary.json")

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
        client = _client(_user("view_dashboard"))
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


# --- Selectors, time frozen --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([3.0], 0.95, 3.0),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0),
        ([float(n) for n in range(1, 11)], 0.95, 10.0),
        ([float(n) for n in range(1, 101)], 0.95, 95.0),
        ([float(n) for n in range(1, 101)], 0.5, 50.0),
    ],
)
def test_it_takes_nearest_rank_percentiles(values, fraction, expected):
    assert selectors.percentile(values, fraction) == expected


@time_machine.travel(NOW, tick=False)
def test_it_rates_and_times_each_schedules_last_runs(django_assert_num_queries):
    make_schedule(name="busy")
    make_schedule(name="idle")
    start = NOW - timedelta(hours=3)
    # Five older runs, slow: past the last 20, so they count for nothing.
    for k in range(5):
        _run(f"old-{k}", at=start + timedelta(minutes=k), periodic_task_name="busy", duration=100.0)
    # The last 20: 19 that tried (two failed) with durations 1..19 s, then one skipped.
    for k in range(1, 20):
        end = "failed" if k in (5, 10) else "succeeded"
        at = start + timedelta(minutes=10 + k)
        _run(f"run-{k}", at=at, end=end, periodic_task_name="busy", duration=float(k))
    event_record(
        type="task.skipped",
        task_id="run-skipped",
        task_name="scheduler.ping",
        periodic_task_name="busy",
        state="SKIPPED",
        at=start + timedelta(minutes=40),
    )
    stored_run(
        "run-skipped",
        status="SKIPPED",
        started=None,
        done=start + timedelta(minutes=40),
        task_name="scheduler.ping",
        periodic_task_name="busy",
    )

    with django_assert_num_queries(2):
        table = selectors.periodic_tasks_dashboard(now=NOW)

    busy, idle = table["rows"]
    assert busy["name"] == "busy"
    assert len(busy["runs"]) == 20
    assert busy["runs"][-1]["state"] == "SKIPPED"
    assert busy["last_status"] == "SKIPPED"
    assert busy["success_rate"] == pytest.approx(17 / 19)
    assert busy["p50"] == 10.0
    assert busy["p95"] == 19.0
    assert busy["next_run"] == NOW + timedelta(minutes=5)
    assert idle["runs"] == []
    assert idle["success_rate"] is None
    assert idle["p50"] is None
    assert table["total"] == 2


@time_machine.travel(NOW, tick=False)
def test_it_lays_out_the_next_24_hours_of_runs_so_that_collisions_show():
    make_schedule(name="backup at midnight", schedule="daily at midnight")
    make_schedule(name="cleanup at midnight", schedule="daily at midnight")
    make_schedule(name="hourly", schedule="every hour")
    make_schedule(name="every minute", schedule="every minute")
    make_schedule(name="paused at midnight", schedule="daily at midnight", enabled=False)
    make_schedule(name="weekly", schedule="every monday at 9am")

    upcoming = selectors.upcoming_runs(now=NOW)

    # Slots of 30 minutes from 22:00 (the slot now is in) to past 22:10 tomorrow.
    assert upcoming["start"] == datetime(2025, 3, 5, 22, 0, tzinfo=UTC)
    assert len(upcoming["slots"]) == 49
    names = [row["name"] for row in upcoming["rows"]]
    # Ordered by first run; the schedule that runs all day last, out of the totals.
    assert names == ["hourly", "backup at midnight", "cleanup at midnight", "every minute"]
    rows = {row["name"]: row for row in upcoming["rows"]}
    assert rows["every minute"]["frequent"] is True
    assert rows["every minute"]["runs"] == selectors.UPCOMING_PER_SCHEDULE
    assert rows["hourly"]["runs"] == 24  # 23:10 today to 22:10 tomorrow
    midnight = 4
    assert rows["backup at midnight"]["counts"][midnight] == 1
    assert sum(rows["backup at midnight"]["counts"]) == 1
    assert upcoming["totals"][midnight] == 3  # two at midnight, and the hourly at 00:10
    assert sum(upcoming["totals"]) == 26
    assert upcoming["busiest"] == {
        "at": datetime(2025, 3, 6, 0, 0, tzinfo=UTC),
        "runs": 3,
        "slots": 1,
    }
    assert upcoming["schedules_enabled"] == 5


@time_machine.travel(NOW, tick=False)
def test_it_counts_the_last_hour_by_what_each_task_is_doing_now():
    _run("done", at=NOW - timedelta(minutes=30))
    _run("broke", at=NOW - timedelta(minutes=20), end="failed")
    _run("running", at=NOW - timedelta(minutes=1), end="")
    event_record(
        type="task.queued", task_id="waiting", state="PENDING", at=NOW - timedelta(seconds=5)
    )
    # Retried: waits in its queue again.
    _run("again", at=NOW - timedelta(minutes=3), end="")
    event_record(type="task.retried", task_id="again", state="RETRY", at=NOW - timedelta(minutes=2))
    # Before the hour: not counted at all.
    _run("old", at=NOW - timedelta(hours=2))
    event_record(
        type="task.queued", task_id="old-wait", state="PENDING", at=NOW - timedelta(hours=2)
    )

    since = NOW - timedelta(hours=1)

    assert selectors.task_activity_since(since) == {
        "succeeded": 1,
        "failed": 1,
        "running": 1,
        "queued": 2,
    }
    assert selectors.tasks_in_flight_since(since) == {
        "running": "running",
        "waiting": "queued",
        "again": "queued",
    }


@time_machine.travel(NOW, tick=False)
def test_it_counts_runs_that_ended_per_minute_over_the_last_hour():
    event_record(
        type="task.succeeded", task_id="a", state="SUCCESS", at=NOW.replace(minute=1, second=5)
    )
    event_record(
        type="task.failed", task_id="b", state="FAILURE", at=NOW.replace(minute=1, second=50)
    )
    event_record(
        type="task.succeeded", task_id="c", state="SUCCESS", at=NOW.replace(minute=10, second=1)
    )
    event_record(
        type="task.started", task_id="d", state="STARTED", at=NOW.replace(minute=10, second=2)
    )
    event_record(type="task.succeeded", task_id="e", state="SUCCESS", at=NOW - timedelta(hours=2))

    bins = selectors.task_throughput(now=NOW)

    assert len(bins) == 60
    assert bins[0]["minute"] == datetime(2025, 3, 5, 21, 11, tzinfo=UTC)
    assert bins[-1] == {
        "minute": datetime(2025, 3, 5, 22, 10, tzinfo=UTC),
        "succeeded": 1,
        "failed": 0,
    }
    assert bins[-10] == {
        "minute": datetime(2025, 3, 5, 22, 1, tzinfo=UTC),
        "succeeded": 1,
        "failed": 1,
    }
    assert sum(b["succeeded"] + b["failed"] for b in bins) == 3


@time_machine.travel(NOW, tick=False)
def test_its_feed_folds_each_tasks_events_into_one_row_whatever_order_they_were_written_in():
    at = NOW - timedelta(minutes=1)
    event_record(
        type="task.queued", task_id="late", state="PENDING", task_name="scheduler.sleep", at=at
    )
    # A worker writes in batches: the end of the run may be stored before its start.
    event_record(
        type="task.succeeded",
        task_id="late",
        state="SUCCESS",
        worker="w1@host",
        duration=1.25,
        at=at + timedelta(seconds=3),
    )
    event_record(
        type="task.started",
        task_id="late",
        state="STARTED",
        worker="w1@host",
        at=at + timedelta(seconds=1),
    )
    event_record(type="task.queued", task_id="newest", state="PENDING", at=NOW)
    event_record(type="schedule.updated", periodic_task_name="pinger", at=NOW)

    feed = selectors.task_feed()

    assert [row["task_id"] for row in feed] == ["newest", "late"]
    late = feed[1]
    assert late["state"] == "SUCCESS"
    assert late["task_name"] == "scheduler.sleep"
    assert late["worker"] == "w1@host"
    assert late["duration"] == 1.25
    assert late["queued_at"] == at
    assert selectors.task_feed(limit=1)[0]["task_id"] == "newest"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0.0421, "42 ms"),
        (3.5, "3.5 s"),
        (125, "2 min 5 s"),
        (3600, "1 h"),
        (3720, "1 h 2 min"),
    ],
)
def test_it_writes_durations_for_people(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("count", "peak", "level"), [(0, 5, 0), (1, 0, 0), (1, 8, 1), (2, 8, 1), (3, 8, 2), (8, 8, 4)]
)
def test_it_shades_heatmap_cells_relative_to_the_busiest(count, peak, level):
    assert heat_level(count, peak) == level
