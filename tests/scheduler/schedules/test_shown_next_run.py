"""The next run every screen shows is the run beat makes (issue 19, item 6): an interval schedule
that never ran is due one interval after it was saved, as beat fires it, not one interval after
whenever someone looks (an "every 2 weeks" schedule was shown up to two weeks off). The CLI, the
API, the dashboard's heatmap and the admin all read `periodic_task_next_runs`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from scheduler.selectors import upcoming_runs
from tests.clients import api_client, response_json
from tests.factories import make_schedule, user_with
from tests.scheduler.cli.helpers import scheduler_json

pytestmark = pytest.mark.django_db

SAVED = datetime(2027, 2, 1, 9, 30, tzinfo=UTC)
LOOKED = SAVED + timedelta(days=3, hours=2)
DUE = SAVED + timedelta(weeks=2)


@pytest.fixture
def fortnightly() -> PeriodicTask:
    with time_machine.travel(SAVED, tick=False):
        return make_schedule(name="fortnightly", schedule="every 2 weeks", params={})


@pytest.mark.usefixtures("fortnightly")
def test_the_cli_shows_the_run_beat_makes():
    with time_machine.travel(LOOKED, tick=False):
        shown = scheduler_json("show", "fortnightly", "--json")
    assert datetime.fromisoformat(shown["next_runs"][0]) == DUE
    assert datetime.fromisoformat(shown["next_runs"][1]) == DUE + timedelta(weeks=2)


def test_the_api_shows_the_run_beat_makes(fortnightly):
    with time_machine.travel(LOOKED, tick=False):
        client = api_client(user_with(superuser=True))  # signed in then: the session is fresh
        data = response_json(client.get(f"/api/schedules/{fortnightly.pk}/"))
    assert datetime.fromisoformat(data["next_run"]) == DUE


@pytest.mark.usefixtures("fortnightly")
def test_the_heatmap_counts_the_run_beat_makes():
    with time_machine.travel(DUE - timedelta(hours=5), tick=False):
        upcoming = upcoming_runs(now=DUE - timedelta(hours=5), hours=24, slot_minutes=60)
    [row] = [row for row in upcoming["rows"] if row["name"] == "fortnightly"]
    assert row["runs"] == 1
    assert row["counts"][5] == 1  # the slot of 09:30, five hours on
