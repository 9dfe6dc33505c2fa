"""Dispatch lag end to end: runs published with beat's headers to a real `celery worker`, their
lags sampled in the real Redis by the worker, and shown by /metrics, the dashboard and the
run's task page of the web process; and the dashboard's panel redrawn by its script in a real
Chromium."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from playwright.sync_api import expect
from prometheus_client.parser import text_string_to_metric_families

from scheduler.live.events import event_record
from scheduler.models import TaskEvent
from scheduler.observability.dispatch_lag import schedule_lags
from scheduler.system.tasks import ping
from tests.browser import TASK_TIMEOUT, off_the_loop, signed_in_page
from tests.clients import client_for
from tests.factories import UserFactory, make_schedule
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DUE_TO_PUBLISHED = 0.5
PASSWORD = "a browser's password"


def test_a_real_workers_runs_show_their_schedules_p50_and_p95(celery_worker):
    schedule = make_schedule(name=f"lag {uuid.uuid4().hex[:8]}")
    due = datetime.now(UTC) - timedelta(seconds=2)
    beat_runs = [
        ping.apply_async(
            headers={
                "periodic_task_name": schedule.name,
                "scheduled_for": (due + timedelta(minutes=k)).isoformat(),
                "published_at": (due + timedelta(minutes=k, seconds=DUE_TO_PUBLISHED)).isoformat(),
            }
        )
        for k in range(-3, 0)
    ]
    # Run now: no due time; its publish time is the publishing process's.
    run_now = ping.apply_async(headers={"periodic_task_name": schedule.name})
    for result in [*beat_runs, run_now]:
        assert result.get(timeout=30)["pong"] is True

    def sampled() -> bool:
        lags = schedule_lags([schedule.name])
        return bool(lags) and lags[0].runs == 4

    def stored() -> bool:
        ids = [beat_runs[0].id, run_now.id]
        return TaskEvent.objects.filter(task_id__in=ids, type="task.succeeded").count() == 2

    # The worker writes its samples with its counts, about once a second, and its events' rows
    # (which the task page reads) in batches.
    wait_for(sampled, timeout=30, what="the worker to sample the four runs")
    wait_for(stored, timeout=30, what="the worker to store the runs' events")

    viewer = UserFactory.create(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client = client_for(viewer)

    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.content.decode())}
    exported = {
        (s.labels["step"], s.labels["quantile"]): s.value
        for s in families["scheduler_dispatch_lag_seconds"].samples
        if s.labels["schedule"] == schedule.name
    }
    assert set(exported) == {
        (step, quantile)
        for step in ("due_to_published", "published_to_started", "started_to_finished")
        for quantile in ("0.5", "0.95")
    }
    assert exported["due_to_published", "0.5"] == DUE_TO_PUBLISHED
    assert exported["due_to_published", "0.95"] == DUE_TO_PUBLISHED
    assert exported["published_to_started", "0.95"] >= 1.5  # published 1.5 s ago at least
    assert exported["started_to_finished", "0.5"] >= 0

    summary = client.get("/dashboard/summary.json").json()["dispatch_lag"]
    [row] = [row for row in summary["rows"] if row["name"] == schedule.name]
    assert row["id"] == schedule.pk
    assert row["runs"] == 4
    steps = row["steps"]
    assert steps["due_to_published"] == {"samples": 3, "p50": 0.5, "p95": 0.5}
    assert steps["published_to_started"]["samples"] == 4
    assert steps["started_to_finished"]["samples"] == 4
    assert steps["published_to_started"]["p95"] == exported["published_to_started", "0.95"]

    page = client.get("/dashboard/").content.decode()
    html_row = page.split(f'data-schedule="{schedule.name}"')[1].split("</tr>")[0]
    assert 'data-step="due_to_published" data-quantile="p50">500 ms<' in html_row
    assert 'data-step="due_to_published" data-quantile="p95">500 ms<' in html_row

    task_page = client.get(f"/dashboard/tasks/{beat_runs[0].id}/").content.decode()
    assert 'data-step="due_to_published">500 ms after due<' in task_page
    assert 'data-step="published_to_started">' in task_page
    run_now_page = client.get(f"/dashboard/tasks/{run_now.id}/").content.decode()
    assert "none: not a scheduled time" in run_now_page
    assert 'data-step="published_to_started">' in run_now_page


def _publish_beat_runs(name: str, count: int) -> list[str]:
    make_schedule(name=name)
    due = datetime.now(UTC) - timedelta(seconds=5)
    published = due + timedelta(seconds=DUE_TO_PUBLISHED)
    headers = {
        "periodic_task_name": name,
        "scheduled_for": due.isoformat(),
        "published_at": published.isoformat(),
    }
    return [str(ping.apply_async(headers=headers).id) for _ in range(count)]


def test_the_dashboards_script_redraws_the_panel_from_the_summary(browser, web_server):
    off_the_loop(
        get_user_model()._default_manager.create_superuser, "lag", "lag@example.com", PASSWORD
    )
    page, errors = signed_in_page(
        browser, web_server, "/dashboard/", username="lag", password=PASSWORD
    )
    name = f"lag {uuid.uuid4().hex[:8]}"
    assert page.locator(f'#dispatch-lag-body tr[data-schedule="{name}"]').count() == 0

    off_the_loop(_publish_beat_runs, name, 2)
    wait_for(
        lambda: [lag.runs for lag in schedule_lags([name])] == [2],
        timeout=30,
        what="the worker to sample the two runs",
    )
    # A schedule event makes the page read the summary again (soon, not every half minute).
    off_the_loop(event_record, type="schedule.updated", periodic_task_name=name)

    cell = page.locator(
        f'#dispatch-lag-body tr[data-schedule="{name}"] '
        'td[data-step="due_to_published"][data-quantile="p50"]'
    )
    cell.wait_for(timeout=TASK_TIMEOUT)
    assert cell.inner_text() == "500 ms"
    row = page.locator(f'#dispatch-lag-body tr[data-schedule="{name}"]')
    # The row may first come from a redraw the runs' own events asked for, when one of the two
    # was sampled: the schedule event's redraw brings the second.
    expect(row.locator("td").nth(1)).to_have_text("2", timeout=TASK_TIMEOUT)
    assert row.locator("a").get_attribute("href").startswith("/admin/django_celery_beat/")
    assert errors == []
