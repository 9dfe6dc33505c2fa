"""The dashboard's periodic tasks at any number: searched, filtered and paged on the server
(/dashboard/schedules.json, and the page's own query string), a page a bounded read; and the
upcoming-runs heatmap counting every enabled schedule, in rows that say how many they hold."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from agents import services as agent_services
from scheduler import selectors
from scheduler.models import ScheduleOptions, ScheduleState
from scheduler.protocol import object_header
from tests.clients import client_for, response_json
from tests.factories import make_agent, make_schedule, user_with
from tests.query_plans import sequential_scans

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 4, 9, 10, tzinfo=UTC)
MANY = 5000


@dataclass(frozen=True)
class Made:
    """One schedule of the big table, as made: what each filter should find."""

    name: str
    task: str
    enabled: bool
    paused: bool
    failing: bool
    owner: str  # "agent:12", "tournament:3" or ""


def _many_schedules(count: int = MANY) -> list[Made]:
    """`count` periodic tasks written in bulk (the services would take minutes): every fifth
    without options (a row made in the stock admin), some disabled, some of those paused, some
    failing by their streak or by their last run, some owned by an agent or a tournament."""
    every_5_minutes = IntervalSchedule.objects.create(every=5, period="minutes")
    hourly = IntervalSchedule.objects.create(every=1, period="hours")
    nightly = CrontabSchedule.objects.create(minute="0", hour="3", timezone="UTC")
    timings: list[dict[str, Any]] = [
        {"interval": every_5_minutes},
        {"interval": hourly},
        {"crontab": nightly},
    ]
    made: list[Made] = []
    tasks, options, states = [], [], []
    for k in range(count):
        name = f"sched {k:05d}"
        task = "scheduler.sleep" if k % 10 == 0 else "scheduler.ping"
        enabled = k % 7 != 0
        has_options = k % 5 != 4
        paused = not enabled and k % 14 == 0 and has_options
        streak = 2 if k % 11 == 0 and has_options else 0
        last_failed = k % 13 == 0
        owner = f"agent:{k}" if k % 100 == 1 else f"tournament:{k}" if k % 250 == 2 else ""
        headers = object_header(*owner.split(":")) if owner else {}
        tasks.append(
            PeriodicTask(
                name=name,
                task=task,
                enabled=enabled,
                headers=json.dumps(headers),
                **timings[k % 3],
            )
        )
        made.append(Made(name, task, enabled, paused, bool(streak) or last_failed, owner))
        if has_options:
            options.append((name, paused, streak))
        if last_failed or k % 13 == 1:
            states.append(
                ScheduleState(
                    periodic_task_name=name,
                    task_id=f"run-{k}",
                    result_id=k,
                    status="FAILURE" if last_failed else "SUCCESS",
                    created_at=NOW - timedelta(hours=1),
                )
            )
    PeriodicTask.objects.bulk_create(tasks, batch_size=500)
    ids = dict(PeriodicTask.objects.values_list("name", "pk"))
    ScheduleOptions.objects.bulk_create(
        [
            ScheduleOptions(
                periodic_task_id=ids[name],
                paused_at=NOW - timedelta(hours=2) if paused else None,
                pause_note="deploy freeze" if paused else "",
                failure_streak=streak,
            )
            for name, paused, streak in options
        ],
        batch_size=500,
    )
    ScheduleState.objects.bulk_create(states, batch_size=500)
    return made


def _viewer() -> Client:
    return client_for(user_with("scheduler.view_dashboard"))


def _page(client: Client, **params: Any) -> dict[str, Any]:
    response = client.get("/dashboard/schedules.json", params)
    assert response.status_code == 200, response.content[:300]
    return dict(response_json(response))


# --- paging ------------------------------------------------------------------------------------


def test_it_pages_through_5000_schedules_by_name_in_a_few_queries_per_page(
    django_assert_max_num_queries,
):
    made = _many_schedules()
    client = _viewer()
    client.get("/dashboard/schedules.json")  # the session and permissions, read once

    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        # The page, two counts and the page's recent runs; and the session, the user, their
        # time zone and permissions: the same nine at the first page and the last.
        with django_assert_max_num_queries(9):
            page = _page(client, limit=200, after=after)
        assert page["start"] == len(seen)
        assert page["total"] == MANY
        seen += [row["name"] for row in page["rows"]]
        assert page["end"] == len(seen)
        pages += 1
        if page["after"] is None:
            break
        after = page["after"]

    assert pages == 25
    assert seen == sorted(made.name for made in made)
    # And back: the page before the last, from the last page's first name.
    last = _page(client, limit=200, after=seen[-201])
    before = _page(client, limit=200, before=last["rows"][0]["name"])
    assert [row["name"] for row in before["rows"]] == seen[-400:-200]
    assert before["start"] == MANY - 400
    assert before["before"] == seen[-400]
    assert before["after"] == seen[-201]


def test_a_page_reads_no_history_and_the_periodic_tasks_through_their_indexes_on_postgresql(
    postgresql_planner,
):
    _many_schedules(300)
    where = selectors.ScheduleFilter(failing=True, paused=False)

    with CaptureQueriesContext(connection) as captured:
        selectors.schedules_page(now=NOW, where=where, after="sched 00100", limit=20)

    sql = [query["sql"] for query in captured.captured_queries]
    assert sequential_scans(sql) == []
    # The filters read the latest run's row by name, never the results.
    filtering = [query for query in sql if "scheduler_schedulestate" in query]
    assert filtering
    assert not any("django_celery_results_taskresult" in query for query in filtering)


# --- search and filters ------------------------------------------------------------------------


def _expected(made: list[Made], **where: Any) -> list[str]:
    def keep(row: Made) -> bool:
        q = where.get("q", "").lower()
        if q and q not in row.name.lower() and q not in row.task.lower():
            return False
        for flag in ("enabled", "paused", "failing"):
            if flag in where and getattr(row, flag) != (where[flag] == "yes"):
                return False
        owner = where.get("owner", "")
        if owner == "none":
            return not row.owner
        if owner and ":" in owner:
            return row.owner == owner
        return not owner or row.owner.startswith(f"{owner}:")

    return [row.name for row in made if keep(row)]


CASES = [
    {"q": "SLEEP"},
    {"q": "sched 0424"},
    {"enabled": "yes"},
    {"enabled": "no"},
    {"paused": "yes"},
    {"paused": "no"},
    {"failing": "yes"},
    {"failing": "no"},
    {"owner": "agent"},
    {"owner": "tournament"},
    {"owner": "agent:101"},
    {"owner": "none"},
    {"q": "sleep", "failing": "yes", "enabled": "yes"},
    {"owner": "agent", "enabled": "no"},
    {"q": "no such schedule"},
]


def test_search_and_filters_find_exactly_the_schedules_that_match_among_5000():
    made = _many_schedules()
    client = _viewer()

    for where in CASES:
        expected = _expected(made, **where)
        page = _page(client, **where, limit=50)

        assert page["total"] == len(expected), where
        assert [row["name"] for row in page["rows"]] == expected[:50], where
        assert page["filtered"] is True
        assert page["after"] == (expected[49] if len(expected) > 50 else None), where
        assert page["query"] | {"limit": ""} == {
            "q": where.get("q", ""),
            "enabled": where.get("enabled", ""),
            "paused": where.get("paused", ""),
            "failing": where.get("failing", ""),
            "owner": where.get("owner", ""),
            "after": "",
            "before": "",
            "limit": "",
        }
        if page["after"]:
            # The next page's link keeps the search.
            assert page["links"]["after"].startswith("?")
            for name, value in where.items():
                assert f"{name}={value}".replace(" ", "+") in page["links"]["after"]
    # Sanity of the table itself: each filter finds some, and not all.
    for where in CASES[:-1]:
        assert 0 < len(_expected(made, **where)) < MANY, where


def test_a_schedule_an_agent_owns_is_found_by_its_owner_and_shows_it():
    agent = make_agent("Poster")
    agent_services.agent_schedule_create(
        agent=agent, name="poster posts", task="scheduler.ping", schedule="every hour"
    )
    make_schedule(name="nobody's")
    client = _viewer()

    for owner in ("agent", f"agent:{agent.pk}"):
        [row] = _page(client, owner=owner)["rows"]
        assert row["name"] == "poster posts"
        assert row["owner"] == {"type": "agent", "id": str(agent.pk)}
    assert _page(client, owner=f"agent:{agent.pk + 1}")["rows"] == []
    assert [row["name"] for row in _page(client, owner="none")["rows"]] == ["nobody's"]
    assert [row["name"] for row in _page(client, owner="tournament")["rows"]] == []


def test_the_page_reads_its_search_from_the_url_so_that_it_can_be_shared():
    for k in range(60):
        make_schedule(name=f"digest {k:02d}", task="scheduler.sleep" if k % 2 else "scheduler.ping")
    make_schedule(name="other")
    client = client_for(
        user_with("scheduler.view_dashboard", "django_celery_beat.change_periodictask")
    )

    html = client.get("/dashboard/", {"q": "sleep", "enabled": "yes", "limit": "10"}).content
    page = html.decode()

    periodic = page[page.index('id="periodic-body"') : page.index('id="periodic-pager"')]
    assert periodic.count("<tr data-schedule-id=") == 10
    assert "digest 01" in periodic
    assert "digest 00" not in periodic
    assert 'name="q" id="schedule-search" value="sleep"' in page
    assert '<option value="yes" selected>yes</option>' in page
    assert "1\u201310 of 30 matching" in page
    next_link = re.search(r'id="periodic-next" rel="next" href="([^"]+)"', page)
    assert next_link is not None
    assert next_link.group(1) == "?q=sleep&amp;enabled=yes&amp;after=digest+19&amp;limit=10"
    # The script starts from the same page.
    script = re.search(r'id="dashboard-initial" type="application/json">(.*?)</script>', page)
    assert script is not None
    initial = json.loads(script.group(1))
    assert initial["periodic"]["query"]["q"] == "sleep"
    assert len(initial["periodic"]["rows"]) == 10


def test_the_summary_brings_the_page_its_query_string_asks_for():
    for name in ("alpha", "beta", "gamma"):
        make_schedule(name=name)
    client = _viewer()

    summary = response_json(client.get("/dashboard/summary.json", {"q": "ET", "limit": "5"}))

    assert [row["name"] for row in summary["periodic"]["rows"]] == ["beta"]
    assert summary["periodic"]["query"]["limit"] == "5"


# --- bad input and permissions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"enabled": "maybe"}, "enabled"),
        ({"paused": "2"}, "paused"),
        ({"failing": "sometimes"}, "failing"),
        ({"owner": "robot"}, "owner"),
        ({"owner": "agent:<script>"}, "owner"),
        ({"owner": "none:3"}, "owner"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"q": "x" * 201}, "q"),
        ({"after": "x" * 201}, "after"),
        ({"after": "a", "before": "b"}, "before"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it_and_the_page_says_so(params, named):
    make_schedule(name="still listed")
    client = _viewer()

    for url in ("/dashboard/schedules.json", "/dashboard/summary.json"):
        response = client.get(url, params)
        assert response.status_code == 400, url
        body = response_json(response)
        assert list(body["params"]) == [named]
        assert named in body["detail"]

    page = client.get("/dashboard/", params)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Left out of the search: " in html
    assert named in html[html.index('id="schedule-problems"') :][:400]


@pytest.mark.parametrize("url", ["/dashboard/schedules.json", "/dashboard/schedules.json?q=x"])
def test_only_staff_who_may_watch_the_dashboard_read_the_schedules(url):
    make_schedule(name="secret")

    anonymous = Client().get(url)
    assert anonymous.status_code == 401
    assert response_json(anonymous) == {"detail": "not signed in"}
    for user in (user_with(), user_with("scheduler.view_dashboard", staff=False)):
        forbidden = client_for(user).get(url)
        assert forbidden.status_code == 403
        assert b"secret" not in forbidden.content
    assert client_for(user_with("scheduler.view_dashboard")).get(url).status_code == 200


# --- the heatmap -------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_the_heatmap_counts_every_enabled_schedule_of_5000_in_rows_that_say_how_many():
    made = _many_schedules()
    enabled = sum(1 for row in made if row.enabled)

    upcoming = selectors.upcoming_runs(now=NOW)

    assert (
        upcoming["schedules_enabled"]
        == enabled
        == PeriodicTask.objects.filter(enabled=True).count()
    )
    assert upcoming["grouped"] is True
    assert len(upcoming["rows"]) <= selectors.UPCOMING_MAX_ROWS
    assert sum(row["schedules"] for row in upcoming["rows"]) + upcoming["idle"] == enabled
    # Every hourly and nightly schedule is counted in the totals; every 5 minutes runs all day.
    counted = [row for row in upcoming["rows"] if not row["frequent"]]
    assert sum(upcoming["totals"]) == sum(sum(row["counts"]) for row in counted)
    hourly = sum(1 for k, row in enumerate(made) if row.enabled and k % 3 == 1)
    nightly = sum(1 for k, row in enumerate(made) if row.enabled and k % 3 == 2)
    assert sum(upcoming["totals"]) == hourly * 24 + nightly
    frequent = sum(row["schedules"] for row in upcoming["rows"] if row["frequent"])
    assert frequent == sum(1 for k, row in enumerate(made) if row.enabled and k % 3 == 0)
    nightly_row = next(row for row in counted if row["schedules"] == nightly)
    assert nightly_row["name"] == f"{nightly} schedules"
    assert len(nightly_row["names"]) == selectors.ROW_NAMES_SHOWN


@time_machine.travel(NOW, tick=False)
def test_past_the_rows_it_has_the_largest_stay_and_the_rest_share_a_row_by_their_first_run():
    # 120 schedules at two times of day each: more patterns of slots than 60 rows hold.
    for k in range(120):
        hours = f"{k % 24},{(k % 24 + 1 + k // 24) % 24}"
        make_schedule(name=f"at {k:03d}", schedule=f"{(k * 7) % 60} {hours} * * *")
    make_schedule(name="every minute", schedule="every minute")
    make_schedule(name="another every minute", schedule="every minute", task="scheduler.sleep")

    upcoming = selectors.upcoming_runs(now=NOW, max_rows=60)

    assert upcoming["grouped"] is True
    rows = upcoming["rows"]
    assert len(rows) <= 60
    assert sum(row["schedules"] for row in rows) == 122
    assert sum(upcoming["totals"]) == 240
    frequent = [row for row in rows if row["frequent"]]
    assert sum(row["schedules"] for row in frequent) == 2
    # Those that share their slots stay together ("3 schedules of scheduler.ping"); the rest
    # are merged by the slot of their first run.
    shared = [row for row in rows if row["schedules"] > 1 and not row["frequent"]]
    assert any(row["name"].endswith(", first running in this slot") for row in shared)
    for row in shared:
        assert row["name"].startswith(f"{row['schedules']} schedules of scheduler.ping")
        assert row["id"] is None
        assert sum(row["counts"]) == row["runs"] == 2 * row["schedules"]


@time_machine.travel(NOW, tick=False)
def test_an_interval_that_ends_before_it_runs_all_day_is_counted_run_by_run():
    make_schedule(name="short-lived", schedule="every 5 minutes")
    PeriodicTask.objects.filter(name="short-lived").update(expires=NOW + timedelta(hours=2))
    make_schedule(name="all day", schedule="every 5 minutes")

    rows = {row["name"]: row for row in selectors.upcoming_runs(now=NOW)["rows"]}

    assert rows["short-lived"]["frequent"] is False
    # Due every 5 minutes from now, the last 5 minutes before it expires.
    assert sum(rows["short-lived"]["counts"]) == rows["short-lived"]["runs"] == 23
    assert rows["all day"]["frequent"] is True
    assert rows["all day"]["runs"] == selectors.UPCOMING_PER_SCHEDULE


def test_the_page_says_how_many_schedules_the_heatmap_holds_in_how_many_rows():
    for k in range(3):
        make_schedule(name=f"nightly {k}", schedule="daily at 3am")
    make_schedule(name="once long ago", schedule="every monday at 9am")
    PeriodicTask.objects.filter(name="once long ago").update(
        expires=datetime(2020, 1, 1, tzinfo=UTC)
    )

    html = _viewer().get("/dashboard/").content.decode()

    note = html[html.index('id="upcoming-note"') :][:400]
    assert "4 enabled schedules in 3 rows, 1 with no run in the next 24 hours." in note


def test_one_reading_of_the_heatmap_serves_every_dashboard_until_a_schedule_changes(settings):
    settings.DASHBOARD_UPCOMING_REUSE = 60.0
    make_schedule(name="nightly", schedule="daily at 3am")
    first = selectors.upcoming_runs_shared(now=NOW)

    with CaptureQueriesContext(connection) as again:
        assert selectors.upcoming_runs_shared(now=NOW + timedelta(seconds=30)) is first
    # The change marker only: no schedule read.
    assert len(again.captured_queries) == 1

    make_schedule(name="hourly", schedule="every hour")
    changed = selectors.upcoming_runs_shared(now=NOW + timedelta(seconds=31))
    assert changed["schedules_enabled"] == 2
    assert selectors.upcoming_runs_shared(now=NOW + timedelta(seconds=95)) is not changed
    # A reading is not kept past its first slot: the heatmap starts at the slot now is in.
    late = datetime(2026, 3, 4, 9, 29, 50, tzinfo=UTC)
    shown = selectors.upcoming_runs_shared(now=late)
    assert selectors.upcoming_runs_shared(now=late + timedelta(seconds=20)) is not shown
