"""A schedule whose task takes a `tournament_id` parameter belongs to that tournament, however it
was made: its page lists it beside the tournament's own periodic task, the tournament's pause
and resume cover it, and runs of its decisions queued by hand carry the tournament's header."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from config.celery import app
from scheduler import client
from scheduler.protocol import OBJECT_HEADER
from tests.factories import make_entries, make_tournament
from tests.scheduler.cli.helpers import scheduler
from tournaments import services
from tournaments.selectors import tournament_schedule_names

pytestmark = pytest.mark.django_db

RUN_AGENTS = "tournaments.run_live_tournament_agents"
CHANGELIST = reverse("admin:tournaments_tournament_changelist")


def _create_extra_round(tournament: Any) -> None:
    """`scheduler create` of a schedule whose parameters name `tournament`."""
    scheduler(
        "create",
        "extra round",
        "every hour",
        "--task",
        RUN_AGENTS,
        "--params",
        json.dumps({"tournament_id": tournament.pk}),
    )


def _enabled(*names: str) -> list[bool]:
    return [PeriodicTask.objects.get(name=name).enabled for name in names]


def test_a_schedule_made_on_the_command_line_belongs_to_the_tournament_its_params_name():
    tournament, other = make_tournament("Mine"), make_tournament("Other")

    _create_extra_round(tournament)

    headers = json.loads(PeriodicTask.objects.get(name="extra round").headers)
    assert headers[OBJECT_HEADER] == f"tournament:{tournament.pk}"
    names = tournament_schedule_names(tournaments=[tournament, other])
    assert names == {tournament.pk: ["extra round"], other.pk: []}


def test_the_command_lines_group_pause_covers_it():
    tournament = make_tournament("Mine")
    _create_extra_round(tournament)

    scheduler("pause", "--tournament", str(tournament.pk))

    assert _enabled("extra round") == [False]


def test_the_tournaments_page_lists_it_and_its_pause_and_resume_cover_it(admin):
    tournament = make_tournament()
    make_entries(tournament, "Alpha")
    services.tournament_start(tournament=tournament)
    tournament.refresh_from_db()
    assert tournament.periodic_task is not None
    own = tournament.periodic_task.name
    client.schedule(RUN_AGENTS, "every hour", params={"tournament_id": tournament.pk}, name="extra")

    page = admin.get(reverse("admin:tournaments_tournament_change", args=[tournament.pk]))
    paused = admin.post(
        CHANGELIST,
        {
            "action": "pause_schedules",
            "_selected_action": [tournament.pk],
            "post": "yes",
            "note": "",
            "until": "",
        },
        follow=True,
    )
    after_pause = _enabled(own, "extra")
    resumed = admin.post(
        CHANGELIST, {"action": "resume_schedules", "_selected_action": [tournament.pk]}, follow=True
    )

    assert tournament_schedule_names(tournaments=[tournament])[tournament.pk] == [own, "extra"]
    assert ">extra</a>" in page.content.decode()
    assert "2 schedules paused." in paused.content.decode()
    assert after_pause == [False, False]
    assert "2 schedules resumed." in resumed.content.decode()
    assert _enabled(own, "extra") == [True, True]


def test_a_decision_run_by_hand_carries_the_tournaments_header(
    admin, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(app, "send_task", lambda name, **options: sent.append(options))
    tournament = make_tournament()
    [entry] = make_entries(tournament, "Alpha")
    services.tournament_start(tournament=tournament)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            reverse("admin:tournaments_entry_changelist"),
            {"action": "run_decisions", "_selected_action": [entry.pk]},
        )

    assert response.status_code == 302
    assert [options["headers"] for options in sent] == [
        {OBJECT_HEADER: f"tournament:{tournament.pk}"}
    ]
