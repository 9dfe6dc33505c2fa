"""The dashboard's feed filter, its one-line errors, the periodic tasks' last run and the favicon,
with the Django test client (issue 15, items 9, 10, 11 and 15). What the page's script does with
them is tested in a real browser: tests/scheduler/dashboard/test_browser_layout.py.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from scheduler import selectors
from scheduler.dashboard.views import feed_filter
from scheduler.live.events import event_record
from tests.factories import TaskResultFactory, UserFactory, make_schedule, stored_run
from tests.query_plans import sequential_scans

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


def _client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


def _events(task_id: str, *, at: datetime, end: str = "SUCCESS", **fields: Any) -> None:
    fields.setdefault("task_name", "scheduler.ping")
    event_record(type="task.queued", task_id=task_id, state="PENDING", at=at, **fields)
    kind = {"SUCCESS": "task.succeeded", "FAILURE": "task.failed"}[end]
    event_record(type=kind, task_id=task_id, state=end, at=at + timedelta(seconds=1), **fields)


def _feed_history() -> None:
    for k in range(3):
        _events(
            f"tick-{k}",
            at=AT + timedelta(minutes=k),
            task_name="tournaments.tick",
            periodic_task_name="spring cup",
            object_type="tournament",
            object_id="7",
        )
    _events("ping-1", at=AT, task_name="scheduler.ping", periodic_task_name="pinger")
    _events("ping-2", at=AT + timedelta(minutes=5), end="FAILURE", message="ValueError: no")
    _events(
        "chat-1", at=AT, task_name="agents.process_message", object_type="session", object_id="3"
    )


def _shown(response: Any) -> list[str]:
    return re.findall(r'<tr data-task-id="([^"]+)" data-state', response.content.decode())


def _config(response: Any) -> dict[str, Any]:
    found = re.search(
        r'<script id="dashboard-config" type="application/json">(.*?)</script>',
        response.content.decode(),
    )
    assert found
    return dict(json.loads(found.group(1)))


# --- Item 9: the feed's filter --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("", {"tick-0", "tick-1", "tick-2", "ping-1", "ping-2", "chat-1"}),
        ("?task=scheduler.ping", {"ping-1", "ping-2"}),
        ("?periodic_task=spring+cup", {"tick-0", "tick-1", "tick-2"}),
        ("?periodic_task=pinger", {"ping-1"}),
        ("?state=FAILURE", {"ping-2"}),
        ("?state=failure", {"ping-2"}),
        ("?object=tournament:7", {"tick-0", "tick-1", "tick-2"}),
        ("?object=session:3", {"chat-1"}),
        ("?task=tournaments.tick&object=session:3", set()),
        ("?task=scheduler.ping&state=SUCCESS", {"ping-1"}),
    ],
)
def test_it_renders_only_the_runs_the_filter_in_the_url_keeps(query, shown):
    _feed_history()

    response = _client().get(f"/dashboard/{query}")

    assert response.status_code == 200
    assert set(_shown(response)) == shown


def test_it_keeps_the_filter_in_the_form_and_hands_it_to_the_script():
    _feed_history()

    response = _client().get("/dashboard/?task=scheduler.ping&state=FAILURE&object=agent:2")

    html = response.content.decode()
    assert 'name="task" list="feed-task-names" value="scheduler.ping"' in html
    assert '<option value="FAILURE" selected>' in html
    assert 'value="agent:2"' in html
    assert 'id="feed-filter-clear"' in html
    assert _config(response)["filter"] == {
        "task": "scheduler.ping",
        "periodic_task": "",
        "state": "FAILURE",
        "object": "agent:2",
    }
    assert "No recent run matches this filter" in html


def test_it_leaves_out_what_it_does_not_understand_and_says_so():
    where, problems = feed_filter(_query("state=NOPE,FAILURE&object=planet&task=a b"))

    assert where == selectors.FeedFilter()
    assert [problem.split(" ", 1)[0] for problem in problems] == ["task", "unknown", "object"]
    where, problems = feed_filter(_query("state=failure,started&object=agent:2"))
    assert where == selectors.FeedFilter(
        states=frozenset({"FAILURE", "STARTED"}), object_type="agent", object_id="2"
    )
    assert problems == []
    response = _client().get("/dashboard/?state=NOPE")
    assert "Left out of the filter: unknown state" in response.content.decode()
    assert response.status_code == 200


def _query(text: str) -> Any:
    from django.http import QueryDict

    return QueryDict(text)


def test_a_state_or_periodic_task_filter_reads_a_bounded_window_of_the_log():
    _feed_history()
    _events("ping-3", at=AT + timedelta(minutes=9))
    where = selectors.FeedFilter(states=frozenset({"FAILURE"}))

    assert [row["task_id"] for row in selectors.task_feed(where=where)] == ["ping-2"]
    # The failure is older than the latest 2 events: not searched for through the whole log.
    assert selectors.task_feed(where=where, window=2) == []


@pytest.mark.parametrize(
    "where",
    [
        selectors.FeedFilter(task="scheduler.ping"),
        selectors.FeedFilter(object_type="tournament", object_id="7"),
        selectors.FeedFilter(periodic_task="spring cup"),
        selectors.FeedFilter(states=frozenset({"FAILURE"})),
        selectors.FeedFilter(task="scheduler.ping", states=frozenset({"FAILURE"})),
    ],
    ids=["task", "object", "periodic task", "state", "task and state"],
)
def test_on_postgresql_the_filtered_feed_reads_the_log_through_indexes(where, postgresql_planner):
    _feed_history()
    make_schedule(name="spring cup", task="scheduler.ping")

    with CaptureQueriesContext(connection) as captured:
        selectors.task_feed(where=where)

    assert sequential_scans([query["sql"] for query in captured.captured_queries]) == []


# --- Item 10: one line per error in the failures panel -----------------------------------------

HTML_PAGE = (
    "<!doctype html>\n<html><head><title>502 Bad Gateway</title><style>body{color:red}</style>"
    "</head>\n<body><h1>Bad Gateway</h1>" + "<p>The upstream server is gone.</p>" * 200
)


@pytest.mark.parametrize(
    ("error", "summary"),
    [
        ("ValueError: bad input", "ValueError: bad input"),
        ("RuntimeError: first line\n  second line\nthird", "RuntimeError: first line"),
        ("\n\n  <b>Bold</b> &amp; more  \n", "Bold & more"),
        ("x" * 500, "x" * 199 + "…"),
    ],
)
def test_an_error_summary_is_one_line_of_plain_text(error, summary):
    assert selectors.error_summary(error) == summary


def test_the_failures_panel_shows_a_long_error_as_one_line():
    TaskResultFactory.create(
        status="FAILURE",
        result=json.dumps(
            {"exc_type": "RuntimeError", "exc_message": [HTML_PAGE], "exc_module": "builtins"}
        ),
    )

    [failure] = selectors.dashboard_summary()["failures"]

    assert "\n" not in failure["error"]
    assert "<" not in failure["error"]
    assert len(failure["error"]) <= selectors.ERROR_SUMMARY_LENGTH


# --- Item 11: the last run keeps its time -------------------------------------------------------


def test_the_last_run_is_the_time_of_the_run_whose_status_is_shown():
    task = make_schedule(name="digest")
    done = datetime(2026, 11, 5, 8, 0, 2, tzinfo=UTC)
    stored_run(
        "d-1",
        status="SUCCESS",
        started=done - timedelta(seconds=2),
        done=done,
        periodic_task_name="digest",
    )
    # Paused: django-celery-beat clears last_run_at; a Run now never set it.
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=None, enabled=False)

    [row] = _client().get("/dashboard/summary.json").json()["periodic"]["rows"]

    assert row["last_status"] == "SUCCESS"
    assert row["last_run_at"] == "2026-11-05T08:00:02Z"


# --- Item 15: the favicon -----------------------------------------------------------------------


def test_favicon_ico_answers_with_the_static_icon_for_anyone():
    response = Client().get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == "/static/scheduler/favicon.svg"
    icon = finders.find("scheduler/favicon.svg")
    assert icon
    with open(icon, encoding="utf-8") as svg:
        assert svg.read().startswith("<svg")


def test_every_page_links_the_favicon():
    client = _client()
    link = '<link rel="icon" href="/static/scheduler/favicon.svg" type="image/svg+xml">'
    for url in ("/dashboard/", "/agents/", "/admin/"):
        assert link in client.get(url).content.decode(), url
    assert link in Client().get("/admin/login/").content.decode()


def test_the_feed_and_the_timeline_show_a_long_error_as_one_line_with_the_whole_on_hover():
    _events("hook-1", at=AT, end="FAILURE", message=f"RuntimeError: {HTML_PAGE}")
    client = _client()

    for url in ("/dashboard/", "/dashboard/tasks/hook-1/"):
        html = client.get(url).content.decode()
        found = re.findall(r'<div class="c-error" title="([^"]*)">([^<]*)</div>', html)
        assert found
        for title, shown in found:
            assert shown == "RuntimeError: 502 Bad Gateway"
            assert title.startswith("RuntimeError: &lt;!doctype html&gt;")
