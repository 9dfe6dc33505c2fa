"""The pages staff open daily ask a fixed number of queries whatever their size, and on
PostgreSQL every one of those queries reaches the big tables through an index.

benchmarks/history_scale.py times the same pages on millions of rows; these tests keep the
shape of their queries from regressing, which a timing on a small test database cannot.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from scheduler import selectors
from scheduler.observability import pagination
from tests.factories import UserFactory, make_schedule, stored_run
from tests.query_plans import sequential_scans

PERIODIC_TASKS = "/admin/django_celery_beat/periodictask/"
RESULTS = "/admin/django_celery_results/taskresult/"
# Every view of the results list that staff use: plain, searched, filtered, drilled down.
RESULT_VIEWS = [
    RESULTS,
    f"{RESULTS}?q=sched-1",
    f"{RESULTS}?q=failed",
    f"{RESULTS}?status__exact=FAILURE",
    f"{RESULTS}?periodic_task_name=sched-1",
    f"{RESULTS}?task_name=scheduler.ping",
    f"{RESULTS}?date_done__year=2026",
    f"{RESULTS}?date_done__year=2026&date_done__month=11",
]


def _history(schedules: int, runs_each: int) -> None:
    """`schedules` periodic tasks with `runs_each` stored runs each, a failure among them."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for s in range(schedules):
        make_schedule(name=f"sched-{s}")
        for k in range(runs_each):
            at = start + timedelta(hours=s, minutes=k)
            stored_run(
                f"run-{s}-{k}",
                status="FAILURE" if k == 0 else "SUCCESS",
                started=at,
                done=at + timedelta(seconds=2),
                periodic_task_name=f"sched-{s}",
                worker=f"w{k % 2}@host",
            )


def _more_history(*, schedules: range, runs_each: int) -> None:
    for s in schedules:
        make_schedule(name=f"sched-{s}")
        # The same day as `_history`: the date hierarchy probes once per day the runs span.
        at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=s)
        for k in range(runs_each):
            stored_run(
                f"more-{s}-{k}",
                status="SUCCESS",
                started=at,
                done=at + timedelta(minutes=k),
                periodic_task_name=f"sched-{s}",
            )


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


def _queries(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.django_db
@pytest.mark.parametrize("url", [PERIODIC_TASKS, *RESULT_VIEWS])
def test_an_admin_list_asks_as_many_queries_for_a_full_page_as_for_a_few_rows(
    admin_client: Client, url: str
) -> None:
    _history(schedules=2, runs_each=2)
    few = len(_queries(admin_client, url))

    _more_history(schedules=range(2, 12), runs_each=8)

    assert len(_queries(admin_client, url)) == few


@pytest.mark.django_db
def test_the_periodic_task_list_shows_last_status_last_run_and_next_run(
    admin_client: Client,
) -> None:
    _history(schedules=1, runs_each=2)

    html = admin_client.get(PERIODIC_TASKS).content.decode()

    last = re.search(r'<td class="field-last_status">(.*?)</td>', html)
    assert last is not None
    assert ">SUCCESS</a>" in last.group(1)
    assert re.search(r'<span class="scheduler-sub">11-01 \d\d:\d\d · 2.00 s</span>$', last.group(1))
    next_run = re.search(
        r'<td class="field-next_run"><span class="scheduler-nowrap">([^<]+)</span>', html
    )
    assert next_run is not None
    assert re.fullmatch(r"\d\d-\d\d \d\d:\d\d UTC", next_run.group(1)), next_run.group(1)


@pytest.mark.django_db
def test_the_results_list_searches_by_the_start_of_ids_and_names(admin_client: Client) -> None:
    _history(schedules=3, runs_each=2)

    def listed(url: str) -> set[str]:
        return set(re.findall(r"run-\d+-\d+", admin_client.get(url).content.decode()))

    assert listed(f"{RESULTS}?q=sched-1") == {"run-1-0", "run-1-1"}
    assert listed(f"{RESULTS}?q=run-2-") == {"run-2-0", "run-2-1"}
    assert listed(f"{RESULTS}?q=failed") == {"run-0-0", "run-1-0", "run-2-0"}
    assert listed(f"{RESULTS}?q=ched-1") == set()  # the start, not anywhere


@pytest.mark.django_db
def test_the_results_date_hierarchy_finds_the_days_that_have_runs(admin_client: Client) -> None:
    _history(schedules=1, runs_each=1)
    stored_run(
        "later",
        status="SUCCESS",
        started=datetime(2026, 11, 3, 12, tzinfo=UTC),
        done=datetime(2026, 11, 3, 12, 1, tzinfo=UTC),
    )

    html = admin_client.get(f"{RESULTS}?date_done__year=2026&date_done__month=11").content.decode()

    days = re.findall(r"date_done__day=(\d+)", html)
    assert days == ["1", "3"]


@pytest.mark.django_db
def test_the_results_list_says_about_when_it_counts_by_the_estimate(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(schedules=1, runs_each=3)
    monkeypatch.setattr(pagination, "estimated_rows", lambda model, using="default": 1_234_567)
    monkeypatch.setattr(pagination, "EXACT_COUNT_BELOW", 0)

    html = admin_client.get(RESULTS).content.decode()
    filtered = admin_client.get(f"{RESULTS}?status__exact=FAILURE").content.decode()

    assert "about 1234567 task results" in html
    assert "about" not in filtered.split('class="paginator"')[1][:200]


@pytest.mark.django_db
def test_the_dashboard_summary_asks_as_many_queries_for_many_schedules_as_for_few() -> None:
    now = datetime(2026, 11, 5, tzinfo=UTC)
    _history(schedules=2, runs_each=3)
    with CaptureQueriesContext(connection) as few:
        selectors.dashboard_summary(now=now)

    _more_history(schedules=range(2, 30), runs_each=3)
    with CaptureQueriesContext(connection) as many:
        selectors.dashboard_summary(now=now)

    assert len(many.captured_queries) == len(few.captured_queries)


# --- PostgreSQL: the plans ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", [PERIODIC_TASKS, *RESULT_VIEWS])
def test_on_postgresql_an_admin_list_reads_the_history_through_indexes(
    admin_client: Client, url: str, postgresql_planner: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(schedules=3, runs_each=3)
    # As on a table of millions: the unfiltered list is counted by the estimate.
    monkeypatch.setattr(pagination, "EXACT_COUNT_BELOW", 0)

    assert sequential_scans(_queries(admin_client, url)) == []


@pytest.mark.django_db
def test_on_postgresql_the_dashboard_summary_reads_the_history_through_indexes(
    postgresql_planner: None,
) -> None:
    now = datetime(2026, 11, 5, tzinfo=UTC)
    _history(schedules=3, runs_each=3)

    with CaptureQueriesContext(connection) as captured:
        selectors.dashboard_summary(now=now)
        selectors.task_feed()

    assert sequential_scans([query["sql"] for query in captured.captured_queries]) == []


@pytest.mark.django_db
def test_the_api_history_counts_an_unfiltered_page_by_the_estimate(
    api_admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(schedules=2, runs_each=2)
    monkeypatch.setattr(pagination, "estimated_rows", lambda model, using="default": 1_234_567)
    monkeypatch.setattr(pagination, "EXACT_COUNT_BELOW", 0)

    unfiltered = api_admin.get("/api/tasks/").json()
    failed = api_admin.get("/api/tasks/?status=failed").json()

    assert unfiltered["count"] == 1_234_567
    assert len(unfiltered["results"]) == 4
    assert failed["count"] == 2


@pytest.mark.django_db
def test_the_results_filters_offer_rows_without_a_periodic_task_or_worker(
    admin_client: Client,
) -> None:
    _history(schedules=1, runs_each=1)

    html = admin_client.get(RESULTS).content.decode()

    assert "periodic_task_name__isnull=True" in html
    assert "worker__isnull=True" in html
    assert "periodic_task_name=sched-0" in html


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_an_index_left_invalid_by_an_interrupted_build_is_built_again() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL builds indexes concurrently")
    from scheduler.indexes import TableIndex

    index = TableIndex(
        "scheduler_result_status_done", "django_celery_results_taskresult", ["status", "date_done"]
    )

    def valid() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [index.name]
            )
            return bool(cursor.fetchone()[0])

    with connection.cursor() as cursor:
        # As a build interrupted half-way leaves it (the test runs as the superuser).
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)",
            [index.name],
        )
    assert not valid()

    # Outside a transaction, as the migration runs (atomic = False).
    with connection.schema_editor(atomic=False) as schema_editor:
        index.create(schema_editor)

    assert valid()
