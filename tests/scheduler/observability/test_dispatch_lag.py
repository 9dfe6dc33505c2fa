"""Dispatch lag: a run's steps from due to done, measured by the worker's receivers and carried on
its events, sampled per schedule in Redis, and shown as p50/p95 on the dashboard, on the run's
task page and in /metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from scheduler import selectors
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.live.events import event_payload
from scheduler.models import TaskEvent
from scheduler.observability import dispatch_lag
from scheduler.observability import metrics as metrics_module
from scheduler.observability.dispatch_lag import (
    SAMPLES,
    dispatch_finished,
    dispatch_started,
    lag_sample,
    schedule_lags,
    step_lags,
)
from scheduler.observability.metrics import MetricsBuffer
from scheduler.protocol import DISPATCH_LAG_INDEX_KEY, dispatch_lag_key
from scheduler.system.tasks import ping
from scheduler.worker import receivers
from tests.clients import client_for
from tests.factories import UserFactory, event_payload_of, make_schedule

pytestmark = pytest.mark.django_db

DUE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STEPS = ("due_to_published", "published_to_started", "started_to_finished")


def _schedule_name() -> str:
    # Redis is shared by the whole test run: each test samples its own schedules.
    return f"lag {uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _no_earlier_samples() -> None:
    """No schedules sampled by earlier tests of the run (a run under a simulated clock would
    rank first in the index for ever): the tests that rank schedules see only their own."""
    redis: Any = get_redis()
    keys = [redis_key(DISPATCH_LAG_INDEX_KEY)]
    keys += list(redis.scan_iter(match=redis_key(dispatch_lag_key("*")), count=1000))
    redis.delete(*keys)


def _viewer() -> Any:
    user = UserFactory.create(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    return user


def _lags(due_to_published: float | None, published_to_started: float, took: float) -> dict:
    lags = {"published_to_started": published_to_started, "started_to_finished": took}
    if due_to_published is not None:
        lags["due_to_published"] = due_to_published
    return lags


def _ended(name: str, lags: dict[str, float], type_: str = "task.succeeded") -> Any:
    return event_payload_of(
        type=type_,
        task_name="scheduler.ping",
        periodic_task_name=name,
        state={"task.succeeded": "SUCCESS", "task.retried": "RETRY"}.get(type_, "FAILURE"),
        data={"dispatch": {"lags": lags}},
    )


def _record(name: str, *lags: dict[str, float]) -> None:
    buffer = MetricsBuffer()
    buffer.add([_ended(name, one) for one in lags], delivered=True)
    buffer.flush()


# --- The figures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param([], dict.fromkeys(STEPS, (0, None, None)), id="no run"),
        pytest.param(
            ["0.5 1.0 2.0"],
            {step: (1, value, value) for step, value in zip(STEPS, (0.5, 1.0, 2.0), strict=True)},
            id="one run",
        ),
        pytest.param(
            # Newest first, as the list holds them; ad-hoc runs know no due step.
            ["- 4.0 1.0", "0.3 3.0 1.0", "- 2.0 1.0", "0.1 1.0 1.0"],
            {
                "due_to_published": (2, 0.1, 0.3),
                "published_to_started": (4, 2.0, 4.0),
                "started_to_finished": (4, 1.0, 1.0),
            },
            id="runs without a due time",
        ),
        pytest.param(
            [f"0 {n} -" for n in range(100, 0, -1)],
            {
                "due_to_published": (100, 0.0, 0.0),
                "published_to_started": (100, 50.0, 95.0),
                "started_to_finished": (0, None, None),
            },
            id="nearest rank over 100 runs that retried",
        ),
        pytest.param(
            ["-0.25 1 1", "junk x 1"],
            {
                "due_to_published": (1, -0.25, -0.25),  # clocks that disagree show as such
                "published_to_started": (1, 1.0, 1.0),
                "started_to_finished": (2, 1.0, 1.0),
            },
            id="a negative lag and an unreadable sample",
        ),
    ],
)
def test_it_takes_p50_and_p95_of_each_step_over_the_runs_that_know_it(samples, expected):
    runs, steps = step_lags(samples)

    assert runs == len(samples)
    assert {step: (lag.samples, lag.p50, lag.p95) for step, lag in steps.items()} == expected


def test_a_run_with_both_headers_has_its_three_steps():
    started = dispatch_started(
        scheduled_for="2026-03-02T08:00:00.000000+00:00",
        published_at="2026-03-02T08:00:00.250000+00:00",
        eta=None,
        started=DUE + timedelta(seconds=1.5),
    )
    finished = dispatch_finished(started, took=2.0000004, finished=DUE + timedelta(seconds=3.5))

    assert started["lags"] == {"due_to_published": 0.25, "published_to_started": 1.25}
    assert finished == {
        "due": "2026-03-02T08:00:00.000000+00:00",  # as sent
        "published": "2026-03-02T08:00:00.250000+00:00",
        "started": "2026-03-02T08:00:01.500000+00:00",
        "finished": "2026-03-02T08:00:03.500000+00:00",
        "lags": {
            "due_to_published": 0.25,
            "published_to_started": 1.25,
            "started_to_finished": 2.0,
        },
    }


@pytest.mark.parametrize(
    ("headers", "lags"),
    [
        pytest.param(
            {"published_at": "2026-03-02T08:00:00Z"},
            {"published_to_started": 1.5},
            id="run now: no due time",
        ),
        pytest.param({}, {}, id="run in the caller: nothing known"),
        pytest.param(
            {"scheduled_for": "2026-03-02T08:00:00Z"}, {}, id="a due time but no publish time"
        ),
        pytest.param(
            {"scheduled_for": "yesterday", "published_at": "2026-03-02T08:00:00"},
            {"published_to_started": 1.5},
            id="an unreadable due time, a naive publish time (UTC)",
        ),
        pytest.param(
            {"published_at": "2026-03-02T08:00:00Z", "eta": "2026-03-02T08:00:01+00:00"},
            {"published_to_started": 0.5},
            id="held for its ETA: counted from it",
        ),
    ],
)
def test_a_run_has_only_the_steps_whose_both_ends_are_known(headers, lags):
    started = dispatch_started(
        scheduled_for=headers.get("scheduled_for"),
        published_at=headers.get("published_at"),
        eta=headers.get("eta"),
        started=DUE + timedelta(seconds=1.5),
    )

    assert started["lags"] == lags


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(_ended("s", _lags(0.5, 1, 2)), ("s", "0.5 1.0 2.0"), id="succeeded"),
        pytest.param(
            _ended("s", _lags(None, 1, 2), "task.failed"), ("s", "- 1.0 2.0"), id="failed"
        ),
        pytest.param(
            _ended("s", {"published_to_started": 1.0}, "task.retried"),
            ("s", "- 1.0 -"),
            id="retried: no end",
        ),
        pytest.param(_ended("", _lags(0.5, 1, 2)), None, id="not a schedule's"),
        pytest.param(_ended("s", {}), None, id="no lag known"),
        pytest.param(
            event_payload_of(
                type="task.started",
                periodic_task_name="s",
                state="STARTED",
                data={"dispatch": {"lags": {"published_to_started": 1.0}}},
            ),
            None,
            id="started: sampled when it ends",
        ),
    ],
)
def test_it_samples_the_events_that_end_a_schedules_run(payload, expected):
    assert lag_sample(payload) == expected


# --- Recording: worker receivers -> events -> Redis -----------------------------------------------


def _run_ping(name: str, **headers: str) -> dict[str, Any]:
    """Run `scheduler.ping` in this process as a run of `name` with `headers`, its events
    counted as a publisher counts them; their data by type."""
    outcome = ping.apply(headers={"periodic_task_name": name, **headers})
    assert outcome.successful()
    rows = list(TaskEvent.objects.filter(task_id=outcome.id).order_by("id"))
    buffer = MetricsBuffer()
    buffer.add([event_payload(row) for row in rows], delivered=True)
    buffer.flush()
    return {row.type: row.payload for row in rows}


def test_a_run_published_with_both_headers_records_three_lags():
    name = _schedule_name()
    published = datetime.now(UTC) - timedelta(seconds=3)
    due = published - timedelta(seconds=0.75)

    data = _run_ping(name, scheduled_for=due.isoformat(), published_at=published.isoformat())

    started, ended = data["task.started"]["dispatch"], data["task.succeeded"]["dispatch"]
    assert set(started["lags"]) == {"due_to_published", "published_to_started"}
    assert set(ended["lags"]) == set(STEPS)
    assert ended["lags"]["due_to_published"] == 0.75
    assert ended["lags"]["published_to_started"] >= 3
    assert ended["due"] == due.isoformat()
    assert ended["published"] == published.isoformat()
    assert ended["started"] == started["started"] <= ended["finished"]
    [lag] = schedule_lags([name])
    assert lag.runs == 1
    assert {step: figures.samples for step, figures in lag.steps.items()} == dict.fromkeys(STEPS, 1)
    assert lag.steps["due_to_published"].p50 == 0.75


def test_a_run_without_a_due_time_records_two_lags():
    name = _schedule_name()
    published = datetime.now(UTC) - timedelta(seconds=1)

    data = _run_ping(name, published_at=published.isoformat())

    ended = data["task.succeeded"]["dispatch"]
    assert set(ended["lags"]) == {"published_to_started", "started_to_finished"}
    assert "due" not in ended
    [lag] = schedule_lags([name])
    assert {step: figures.samples for step, figures in lag.steps.items()} == {
        "due_to_published": 0,
        "published_to_started": 1,
        "started_to_finished": 1,
    }


def test_a_retrys_attempt_is_not_sampled():
    name = _schedule_name()
    published = datetime.now(UTC).isoformat()

    outcome = ping.apply(retries=1, headers={"periodic_task_name": name, "published_at": published})

    assert outcome.successful()
    for row in TaskEvent.objects.filter(task_id=outcome.id):
        assert "dispatch" not in row.payload
        assert lag_sample(event_payload(row)) is None


def test_a_published_run_gets_its_publish_time_unless_it_has_one():
    stamped: dict[str, Any] = {"id": "run-1", "task": "scheduler.ping"}
    kept = {"id": "run-2", "task": "scheduler.ping", "published_at": "2026-03-02T08:00:00+00:00"}
    before = datetime.now(UTC)

    receivers._task_queued(sender="scheduler.ping", headers=stamped)
    receivers._task_queued(sender="scheduler.ping", headers=kept)

    assert before <= datetime.fromisoformat(stamped["published_at"]) <= datetime.now(UTC)
    assert kept["published_at"] == "2026-03-02T08:00:00+00:00"


def test_a_schedule_keeps_its_latest_samples_only():
    name = _schedule_name()

    _record(name, *(_lags(0.0, float(n), 1.0) for n in range(SAMPLES + 10)))

    [lag] = schedule_lags([name])
    assert lag.runs == SAMPLES
    # The ten oldest (0..9 s in the queue) went.
    assert lag.steps["published_to_started"].p50 == 10 + SAMPLES // 2 - 1
    redis: Any = get_redis()  # redis-py types every reply as maybe-awaitable; these are not
    assert 0 < redis.ttl(redis_key(dispatch_lag_key(name))) <= dispatch_lag.SAMPLE_TTL
    assert redis.zscore(redis_key(DISPATCH_LAG_INDEX_KEY), name) is not None


def test_samples_that_could_not_be_written_wait_bounded_for_the_next_flush(monkeypatch):
    name = _schedule_name()
    buffer = MetricsBuffer()
    buffer.add([_ended(name, _lags(0.1, 1.0, 1.0)) for _ in range(SAMPLES + 5)], delivered=True)

    class Down:
        def pipeline(self, **kwargs: Any) -> Any:
            raise ConnectionError("Redis is down")

    monkeypatch.setattr(metrics_module, "get_redis", lambda: Down())
    buffer.flush()
    assert len(buffer._lags[name]) == SAMPLES
    monkeypatch.undo()
    buffer.flush()

    [lag] = schedule_lags([name])
    assert lag.runs == SAMPLES


# --- The dashboard, the task page and /metrics ---------------------------------------------------


def test_the_dashboard_shows_p50_and_p95_of_each_step_per_schedule():
    schedule = make_schedule(name=_schedule_name())
    gone = _schedule_name()
    _record(schedule.name, _lags(0.25, 1.0, 2.0), _lags(0.5, 3.0, 4.0), _lags(None, 5.0, 6.0))
    _record(gone, _lags(0.1, 0.2, 0.3))

    client = client_for(_viewer())
    summary = client.get("/dashboard/summary.json").json()["dispatch_lag"]
    page = client.get("/dashboard/").content.decode()

    rows = {row["name"]: row for row in summary["rows"]}
    assert rows[schedule.name] == {
        "name": schedule.name,
        "id": schedule.pk,
        "runs": 3,
        "steps": {
            "due_to_published": {"samples": 2, "p50": 0.25, "p95": 0.5},
            "published_to_started": {"samples": 3, "p50": 3.0, "p95": 5.0},
            "started_to_finished": {"samples": 3, "p50": 4.0, "p95": 6.0},
        },
    }
    assert rows[gone]["id"] is None  # deleted, or never a schedule here
    assert summary["steps"] == list(STEPS)
    assert summary["total"] >= 2
    assert 'id="dispatch-lag"' in page
    row = page.split(f'data-schedule="{schedule.name}"')[1].split("</tr>")[0]
    assert 'data-step="due_to_published" data-quantile="p50">250 ms<' in row
    assert 'data-step="due_to_published" data-quantile="p95">500 ms<' in row
    assert 'data-step="published_to_started" data-quantile="p95">5.0 s<' in row
    assert 'data-step="started_to_finished" data-quantile="p50">4.0 s<' in row
    assert f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/" in row


def test_the_dashboard_still_renders_when_redis_cannot_be_read(monkeypatch):
    def down(**kwargs: Any) -> Any:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr("scheduler.selectors.dispatch.schedules_sampled", down)

    panel = selectors.dispatch_lag_overview()

    assert panel["rows"] == []
    assert panel["error"] == "Redis is down"


def test_the_task_page_shows_the_runs_due_published_started_and_finished_times():
    name = _schedule_name()
    published = datetime(2026, 3, 2, 8, 0, 1, tzinfo=UTC)
    outcome = ping.apply(
        headers={
            "periodic_task_name": name,
            "scheduled_for": "2026-03-02T08:00:00+00:00",
            "published_at": published.isoformat(),
        }
    )

    page = client_for(_viewer()).get(f"/dashboard/tasks/{outcome.id}/").content.decode()

    assert '<dd id="task-due">2026-03-02 08:00:00</dd>' in page
    assert "2026-03-02 08:00:01" in page.split('id="task-published">')[1].split("</dd>")[0]
    assert 'data-step="due_to_published">1.0 s after due<' in page
    assert 'data-step="published_to_started">' in page
    assert 'data-step="started_to_finished">' in page


def test_metrics_export_p50_and_p95_of_the_schedules_run_most_lately(settings):
    older, newer = _schedule_name(), _schedule_name()
    _record(older, _lags(0.1, 0.2, 0.3))
    _record(newer, _lags(1.0, 2.0, 3.0), _lags(None, 4.0, 5.0))
    settings.METRICS_DISPATCH_LAG_SCHEDULES = 1

    response = client_for(_viewer()).get("/metrics")

    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    samples = {
        (s.labels["schedule"], s.labels["step"], s.labels["quantile"]): s.value
        for s in families["scheduler_dispatch_lag_seconds"].samples
    }
    assert samples == {
        (newer, "due_to_published", "0.5"): 1.0,
        (newer, "due_to_published", "0.95"): 1.0,
        (newer, "published_to_started", "0.5"): 2.0,
        (newer, "published_to_started", "0.95"): 4.0,
        (newer, "started_to_finished", "0.5"): 3.0,
        (newer, "started_to_finished", "0.95"): 5.0,
    }


@pytest.mark.parametrize("url", ["/dashboard/summary.json", "/metrics"])
def test_who_may_not_watch_the_dashboard_sees_no_dispatch_lag(url):
    name = _schedule_name()
    _record(name, _lags(0.1, 0.2, 0.3))
    outsider = UserFactory.create(is_staff=True)  # staff, without scheduler.view_dashboard

    for client, status in ((Client(), 401), (client_for(outsider), 403)):
        response = client.get(url)
        assert response.status_code == status
        assert name.encode() not in response.content
