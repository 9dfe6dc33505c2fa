"""A deployment gets the tournaments' upkeep from code (tournaments/upkeep.py): after the
release step (`migrate`, `scheduler sync`), a tournament created in the admin goes live and ends
on its dates with no other step, by the periodic tasks beat runs (issue 17)."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from tests.forms import tournament_form
from tournaments.models import Tournament
from tournaments.tasks import check_transitions
from tournaments.upkeep import SCHEDULES

pytestmark = pytest.mark.django_db

TRANSITIONS = "tournaments: check transitions"


def test_a_tournament_made_in_the_admin_goes_live_and_ends_by_the_declared_upkeep(admin):
    # The release step of every deploy file; no seed_demo, no `tournament setup`.
    call_command("scheduler", "sync", stdout=StringIO())
    upkeep = PeriodicTask.objects.filter(name__in=[item.name for item in SCHEDULES])
    assert {(row.task, row.enabled) for row in upkeep} == {
        ("tournaments.check_transitions", True),
        ("tournaments.recover_crashed_agents", True),
        ("tournaments.update_rankings", True),
    }

    with time_machine.travel(datetime(2026, 6, 30, 12, 0, tzinfo=UTC), tick=False):
        response = admin.post(reverse("admin:tournaments_tournament_add"), tournament_form())
        assert response.status_code == 302, response.content[:2000]
    cup = Tournament.objects.get(name="Summer cup")
    assert cup.status == Tournament.Status.SCHEDULED
    # What beat runs every minute (the row the sync made), as its start and end come.
    assert PeriodicTask.objects.get(name=TRANSITIONS).task == check_transitions.name

    with time_machine.travel(datetime(2026, 7, 1, 9, 0, 30, tzinfo=UTC), tick=False):
        check_transitions()
    cup.refresh_from_db()
    assert cup.status == Tournament.Status.LIVE

    with time_machine.travel(datetime(2026, 7, 1, 17, 0, 30, tzinfo=UTC), tick=False):
        check_transitions()
    cup.refresh_from_db()
    assert cup.status == Tournament.Status.FINISHED
