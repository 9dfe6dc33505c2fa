"""The selectors behind the dashboard's panels, with time frozen: each schedule's last runs rated
and timed, the next 24 hours of runs laid out so that collisions show, the last hour counted by
what each task is doing and per minute, the feed folding each task's events into one row; and the
filters that write durations and shade the heatmap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from scheduler import selectors
from scheduler.dashboard.views import heat_level
from scheduler.live.events import event_record
from scheduler.templatetags.dashboard import duration
from tests.factories import make_schedule, stored_run
from tests.scheduler.dashboard.helpers import record_run

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 5, 22, 10, tzinfo=UTC)  # a Wednesday


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
        record_run(
            f"old-{k}", at=start + timedelta(minutes=k), periodic_task_name="busy", duration=100.0
        )
    # The last 20: 19 that tried (two failed) with durations 1..19 s, then one skipped.
    for k in range(1, 20):
        end = "failed" if k in (5, 10) else "succeeded"
        at = start + timedelta(minutes=10 + k)
        record_run(f"run-{k}", at=at, end=end, periodic_task_name="busy", duration=float(k))
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
    record_run("done", at=NOW - timedelta(minutes=30))
    record_run("broke", at=NOW - timedelta(minutes=20), end="failed")
    record_run("running", at=NOW - timedelta(minutes=1), end="")
    event_record(
        type="task.queued", task_id="waiting", state="PENDING", at=NOW - timedelta(seconds=5)
    )
    # Retried: waits in its queue again.
    record_run("again", at=NOW - timedelta(minutes=3), end="")
    event_record(type="task.retried", task_id="again", state="RETRY", at=NOW - timedelta(minutes=2))
    # Before the hour: not counted at all.
    record_run("old", at=NOW - timedelta(hours=2))
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
