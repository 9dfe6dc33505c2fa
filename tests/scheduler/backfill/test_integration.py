"""Backfills end to end: a real worker publishes the runs (`scheduler.backfill`) and runs them,
each run seeing its due time; a repeat makes no run twice; and the backfill's page in a real
browser shows its progress as the worker sends it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_celery_results.models import TaskResult

from config.celery import app
from scheduler.catalog import CatalogEntry, catalog
from scheduler.models import Backfill, Source
from scheduler.services import backfill_run_id, backfill_start
from tests.browser import TASK_TIMEOUT, LiveServer, off_the_loop, signed_in_page
from tests.factories import make_schedule
from tests.processes import RunningProcess, start_worker, wait_for

from .conftest import at
from .probe import PROBE

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"


@pytest.fixture(scope="module")
def celery_worker(
    django_db_setup: None, django_db_blocker: object, run_dir: Path
) -> Iterator[RunningProcess]:
    """The real worker of these tests (the web server's too): every queue, and the probe task."""
    worker = start_worker(log_dir=run_dir, extra=("-I", "tests.scheduler.backfill.probe"))
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def probe_entry(monkeypatch: pytest.MonkeyPatch) -> CatalogEntry:
    """The probe in this process's catalog, so that a schedule may run it."""
    entry = CatalogEntry(name=PROBE, description="Answer the run's headers (tests).")
    monkeypatch.setitem(catalog._entries, PROBE, entry)
    return entry


def _finished(backfill: Backfill, worker: RunningProcess) -> Backfill:
    def over() -> bool:
        backfill.refresh_from_db()
        return backfill.status != Backfill.Status.RUNNING

    wait_for(over, timeout=60, what=f"backfill {backfill.pk} to finish\n{worker.log()}")
    return backfill


def _results(ids: list[str], worker: RunningProcess) -> dict[str, TaskResult]:
    def stored() -> bool:
        return TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").count() == len(ids)

    wait_for(stored, timeout=60, what=f"{len(ids)} runs to succeed\n{worker.log()}")
    return {row.task_id: row for row in TaskResult.objects.filter(task_id__in=ids)}


def test_the_worker_runs_each_backfilled_run_with_its_due_time_and_a_repeat_makes_none(
    celery_worker, probe_entry
):
    periodic_task = make_schedule(name="probe hourly", task=PROBE, schedule="0 * * * *")
    due = [at("2025-01-01 00:00"), at("2025-01-01 01:00"), at("2025-01-01 02:00")]
    ids = [backfill_run_id(periodic_task.pk, moment) for moment in due]

    backfill = backfill_start(
        name="probe hourly", start=due[0], end=due[-1], overlap="skip", source=Source.CLI
    )
    first = _finished(backfill, celery_worker)
    results = _results(ids, celery_worker)

    assert (first.status, first.total, first.published, first.existing) == ("done", 3, 3, 0)
    for task_id, moment in zip(ids, due, strict=True):
        row = results[task_id]
        answer = json.loads(row.result)
        assert answer["headers"]["scheduled_for"] == moment.isoformat(timespec="microseconds")
        assert answer["headers"]["backfill_id"] == backfill.pk
        assert answer["headers"]["overlap_policy"] == "skip"
        assert answer["headers"]["periodic_task_name"] == "probe hourly"
        assert answer["headers"]["published_at"].endswith("+00:00")
        assert row.periodic_task_name == "probe hourly"  # type: ignore[attr-defined]

    again = _finished(
        backfill_start(name="probe hourly", start=due[0], end=due[-1], source=Source.CLI),
        celery_worker,
    )

    assert (again.status, again.total, again.published, again.existing) == ("done", 3, 0, 3)
    assert TaskResult.objects.filter(periodic_task_name="probe hourly").count() == 3


def test_the_backfills_page_shows_the_progress_as_the_worker_publishes(
    browser: Any, web_server: LiveServer, probe_entry
):
    def setup() -> Backfill:
        get_user_model()._default_manager.create_superuser("admin", "a@example.com", PASSWORD)
        periodic_task = make_schedule(name="probe daily", task=PROBE, schedule="0 9 * * *")
        # Written as the service writes it, without queueing its publisher yet: the page is
        # open first, then the worker moves it.
        return Backfill.objects.create(
            periodic_task=periodic_task,
            periodic_task_name=periodic_task.name,
            start=at("2025-01-01 00:00"),
            end=at("2025-01-05 00:00"),
            overlap="buffer_all",
            total=4,
            source=Source.ADMIN,
        )

    backfill = off_the_loop(setup)
    path = reverse("admin:scheduler_backfill_change", args=[backfill.pk])
    page, errors = signed_in_page(browser, web_server, path, username="admin", password=PASSWORD)
    row = page.locator(f'[data-backfill="{backfill.pk}"]').first
    assert row.locator('[data-part="words"]').inner_text() == "0/4 runs"

    app.send_task("scheduler.backfill", kwargs={"backfill_id": backfill.pk}, queue="maintenance")

    page.wait_for_function(
        f"""() => document.querySelector('[data-backfill-status="{backfill.pk}"]')
            .textContent === 'Done'""",
        timeout=TASK_TIMEOUT,
    )
    assert row.locator('[data-part="words"]').inner_text() == "4/4 runs"
    assert row.locator("progress").get_attribute("value") == "4"
    assert errors == []
