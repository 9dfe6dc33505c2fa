"""The dashboard's dead letters panel with the Django test client: the open letters and their
count, Requeue and Discard for who may run tasks, and the summary's panel as JSON. The buttons,
live, are test_browser_dead_letters.py's."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scheduler import selectors
from scheduler.core.masking import MASK
from scheduler.models import DeadLetter
from tests.clients import client_for
from tests.factories import make_dead_letter, user_with

pytestmark = pytest.mark.django_db

PANEL = re.compile(r'<section[^>]*id="dead-letters".*?</section>', re.DOTALL)


def _panel(html: str) -> str:
    found = PANEL.search(html)
    assert found is not None, "no dead letters panel"
    return found.group(0)


def test_it_shows_the_open_letters_with_their_buttons():
    letter = make_dead_letter(periodic_task_name="nightly sleep", attempts=4)
    outside = make_dead_letter(task_name="billing.send_invoices", kwargs={})
    make_dead_letter(status=DeadLetter.Status.DISCARDED)

    panel = _panel(client_for(user_with(superuser=True)).get("/dashboard/").content.decode())

    assert '<span id="dead-letters-open">2</span>' in panel
    assert f'data-action="requeue" data-id="{letter.pk}"' in panel
    assert f'data-action="discard" data-id="{letter.pk}"' in panel
    # Outside the catalog: it cannot be requeued, only discarded.
    assert f'data-action="requeue" data-id="{outside.pk}"' not in panel
    assert f'data-action="discard" data-id="{outside.pk}"' in panel
    assert "nightly sleep" in panel
    assert "RuntimeError: the run broke" in panel
    assert f"/dashboard/tasks/{letter.task_id}/" in panel


@pytest.mark.parametrize(
    ("permissions", "buttons"),
    [
        (("scheduler.view_dashboard",), False),
        (("scheduler.view_dashboard", "scheduler.run_tasks"), True),
    ],
)
def test_the_buttons_are_only_for_who_may_run_tasks(permissions, buttons):
    make_dead_letter()

    panel = _panel(client_for(user_with(*permissions)).get("/dashboard/").content.decode())

    assert ('data-action="requeue"' in panel) is buttons
    assert ('data-action="discard"' in panel) is buttons


def test_it_says_when_no_letter_is_open():
    make_dead_letter(status=DeadLetter.Status.REQUEUED)

    panel = _panel(client_for(user_with(superuser=True)).get("/dashboard/").content.decode())

    assert '<span id="dead-letters-open">0</span>' in panel
    assert "No dead letter" in panel


def test_the_summary_brings_the_panel_with_the_arguments_masked():
    letter = make_dead_letter(kwargs={"seconds": 1, "token": "t-1"})

    summary = client_for(user_with(superuser=True)).get("/dashboard/summary.json").json()

    panel = summary["dead_letters"]
    assert (panel["open"], panel["capped"]) == (1, False)
    [row] = panel["rows"]
    assert (row["id"], row["kwargs"]) == (letter.pk, {"seconds": 1, "token": MASK})
    assert "t-1" not in json.dumps(summary)


def test_the_open_count_stops_at_its_cap(monkeypatch):
    monkeypatch.setattr("scheduler.selectors.dead_letters.OPEN_COUNT_CAP", 2)
    for _ in range(4):
        make_dead_letter()

    with CaptureQueriesContext(connection) as queries:
        panel = selectors.dead_letters_overview(limit=3)

    assert (panel["open"], panel["capped"], len(panel["rows"])) == (2, True, 3)
    assert len(queries) == 2
    assert "LIMIT 3" in queries[0]["sql"]  # the count reads no further than the cap
