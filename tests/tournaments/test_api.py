"""The tournaments' REST API: tournaments, their leaderboards and a decision run now, with their
permissions and their answers to bad input (all JSON).

The run is queued after commit: in these (non-transaction) tests on_commit callbacks never run
unless captured, so nothing reaches the broker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from scheduler.services import schedule_pause
from tests.clients import api_client, response_json
from tests.factories import TOURNAMENT_START, make_entries, make_tournament, user_with
from tournaments import services
from tournaments.models import Decision, Entry, Tournament

pytestmark = pytest.mark.django_db


def _live(name: str = "Spring cup", *entries: str) -> tuple[Tournament, list[Entry]]:
    tournament = make_tournament(name)
    made = make_entries(tournament, *entries)
    services.tournament_start(tournament=tournament)
    tournament.refresh_from_db()
    return tournament, made


def _run_url(tournament: Tournament, entry: Entry) -> str:
    return f"/api/tournaments/{tournament.pk}/entries/{entry.pk}/run/"


# --- Who may call --------------------------------------------------------------------------------


def _endpoints(tournament: Tournament, entry: Entry) -> list[tuple[str, str]]:
    return [
        ("get", "/api/tournaments/"),
        ("get", f"/api/tournaments/{tournament.pk}/"),
        ("get", f"/api/tournaments/{tournament.pk}/leaderboard/"),
        ("post", _run_url(tournament, entry)),
        ("post", f"/api/tournaments/{tournament.pk}/start/"),
    ]


def test_anonymous_callers_get_401_and_non_staff_403():
    tournament, [entry] = _live("Cup", "Alpha")
    non_staff = api_client(user_with("scheduler.run_tasks", staff=False))

    for method, path in _endpoints(tournament, entry):
        anonymous = getattr(APIClient(), method)(path, format="json")
        refused = getattr(non_staff, method)(path, format="json")
        assert anonymous.status_code == 401, path
        assert response_json(anonymous)["detail"], path
        assert refused.status_code == 403, path
        assert "staff only" in response_json(refused)["detail"], path


def test_staff_read_but_need_run_tasks_to_run(django_capture_on_commit_callbacks):
    tournament, [entry] = _live("Cup", "Alpha")
    staff = api_client(user_with())

    reads = [staff.get(path) for method, path in _endpoints(tournament, entry) if method == "get"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = staff.post(_run_url(tournament, entry), format="json")

    assert [r.status_code for r in reads] == [200, 200, 200]
    assert run.status_code == 403
    assert response_json(run) == {"detail": "permission required: scheduler.run_tasks"}
    assert callbacks == []


# --- Tournaments ---------------------------------------------------------------------------------


def test_it_lists_tournaments_latest_start_first_paginated_and_by_status(api_admin):
    early = make_tournament("Early")
    late = make_tournament(
        "Late",
        starts_at=TOURNAMENT_START + timedelta(days=1),
        ends_at=TOURNAMENT_START + timedelta(days=2),
    )
    make_entries(early, "Alpha", "Beta")
    services.tournament_start(tournament=late)

    everything = response_json(api_admin.get("/api/tournaments/"))
    live = response_json(api_admin.get("/api/tournaments/?status=live"))
    first_page = response_json(api_admin.get("/api/tournaments/?page_size=1"))

    assert [t["name"] for t in everything["results"]] == ["Late", "Early"]
    assert everything["count"] == 2
    assert [t["name"] for t in live["results"]] == ["Late"]
    assert first_page["count"] == 2
    assert len(first_page["results"]) == 1
    assert first_page["next"]
    row = everything["results"][1]
    assert row["entry_count"] == 2
    assert row["status"] == "scheduled"
    assert row["symbols"] == ["ACME", "BOLT"]
    assert row["initial_cash"] == "10000.00"
    assert row["periodic_task"] is None
    assert row["url"] == f"http://testserver/api/tournaments/{early.pk}/"
    assert row["leaderboard_url"] == f"http://testserver/api/tournaments/{early.pk}/leaderboard/"
    assert row["page_url"] == f"http://testserver/tournaments/{early.pk}/"


def test_it_names_a_bad_status_filter(api_admin):
    response = api_admin.get("/api/tournaments/?status=running")

    assert response.status_code == 400
    assert list(response_json(response)) == ["status"]


def test_it_shows_who_paused_its_periodic_task_and_why(api_admin):
    tournament, _ = _live("Cup", "Alpha")
    assert tournament.periodic_task is not None
    schedule_pause(name=tournament.periodic_task.name, note="market data late", until="1h")

    body = response_json(api_admin.get(f"/api/tournaments/{tournament.pk}/"))

    assert body["periodic_task"]["enabled"] is False
    assert body["periodic_task"]["pause"]["note"] == "market data late"
    assert body["periodic_task"]["pause"]["until"] is not None


def test_it_shows_a_tournament_with_its_periodic_task(api_admin):
    tournament, _ = _live("Cup", "Alpha")
    assert tournament.periodic_task is not None

    response = api_admin.get(f"/api/tournaments/{tournament.pk}/")

    body = response_json(response)
    assert response.status_code == 200
    assert body["id"] == tournament.pk
    assert body["status"] == "live"
    assert body["entry_count"] == 1
    assert body["periodic_task"] == {
        "id": tournament.periodic_task.pk,
        "name": tournament.periodic_task.name,
        "enabled": True,
        "pause": None,
    }


@pytest.mark.parametrize(
    "path",
    [
        "/api/tournaments/999999/",
        "/api/tournaments/999999/leaderboard/",
        "/api/tournaments/99999999999999999999999/",
        "/api/tournaments/cup/",
    ],
)
def test_it_answers_404_as_json_for_an_unknown_tournament(api_admin, path):
    response = api_admin.get(path)

    assert response.status_code == 404
    assert response_json(response)["detail"]


# --- The leaderboard -----------------------------------------------------------------------------


def test_the_leaderboard_lists_entries_by_rank(api_admin):
    tournament, [alpha, beta, gamma] = _live("Cup", "Alpha", "Beta", "Gamma")
    Entry.objects.filter(pk=alpha.pk).update(cash=Decimal("100.00"))
    Entry.objects.filter(pk=gamma.pk).update(cash=Decimal("20000.00"))
    services.rankings_update(tournament=tournament, now=TOURNAMENT_START)

    response = api_admin.get(f"/api/tournaments/{tournament.pk}/leaderboard/")

    body = response_json(response)
    assert response.status_code == 200
    assert [row["name"] for row in body["results"]] == ["Gamma", "Beta", "Alpha"]
    assert [row["rank"] for row in body["results"]] == [1, 2, 3]
    top = body["results"][0]
    assert top["id"] == gamma.pk
    assert top["agent"] == "gamma"
    assert top["equity"] == "20000.00"
    assert top["status"] == "active"
    assert top["decisions"] == 0
    assert top["last_tick"] == -1
    assert top["run_url"] == f"http://testserver{_run_url(tournament, gamma)}"
    assert beta.pk in [row["id"] for row in body["results"]]


def test_entries_not_ranked_yet_come_last_by_equity(api_admin):
    tournament, [_, beta] = _live("Cup", "Alpha", "Beta")
    Entry.objects.filter(pk=beta.pk).update(equity=Decimal("12000.00"))

    body = response_json(api_admin.get(f"/api/tournaments/{tournament.pk}/leaderboard/"))

    assert [(row["name"], row["rank"]) for row in body["results"]] == [
        ("Beta", None),
        ("Alpha", None),
    ]


# --- Running one decision ------------------------------------------------------------------------


def test_it_queues_one_decision_of_the_entry(api_admin, django_capture_on_commit_callbacks):
    tournament, [entry] = _live("Cup", "Alpha")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin.post(_run_url(tournament, entry), {"tick": 3}, format="json")

    body = response_json(response)
    assert response.status_code == 202
    assert body["status"] == "queued"
    assert body["url"] == f"http://testserver/api/tasks/{body['task_id']}/"
    assert [c for c in callbacks if c.__qualname__.startswith("task_enqueue.")]


def test_the_queued_run_makes_the_decision(api_admin, settings, django_capture_on_commit_callbacks):
    settings.CELERY_ENABLED = False  # the run happens in the caller: its result is seen here
    tournament, [entry] = _live("Cup", "Alpha")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(
            _run_url(tournament, entry), {"tick": 4, "recover_from_crash": True}, format="json"
        )

    assert response.status_code == 202
    decision = Decision.objects.get(entry=entry)
    assert decision.tick == 4
    assert decision.task_id == response_json(response)["task_id"]


def test_it_answers_404_for_an_unknown_tournament_or_entry_or_anothers_entry(api_admin):
    tournament, [entry] = _live("Cup", "Alpha")
    other, [theirs] = _live("Other cup", "Beta")

    for path in (
        f"/api/tournaments/999999/entries/{entry.pk}/run/",
        f"/api/tournaments/{tournament.pk}/entries/999999/run/",
        _run_url(tournament, theirs),
        f"/api/tournaments/{tournament.pk}/entries/x/run/",
    ):
        response = api_admin.post(path, format="json")
        assert response.status_code == 404, path
        assert response_json(response)["detail"], path
    assert "has no entry" in response_json(api_admin.post(_run_url(tournament, theirs)))["detail"]
    assert other.pk != tournament.pk


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tick": -1}, "tick"),
        ({"tick": "5"}, "tick"),
        ({"tick": 1.5}, "tick"),
        ({"tick": True}, "tick"),
        ({"recover_from_crash": "yes"}, "recover_from_crash"),
        ({"recover_from_crash": 1}, "recover_from_crash"),
        ({"entry_id": 3}, "entry_id"),
        (["tick"], "body"),
    ],
)
def test_it_names_the_field_of_a_bad_run(
    api_admin, django_capture_on_commit_callbacks, body, field
):
    tournament, [entry] = _live("Cup", "Alpha")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin.post(_run_url(tournament, entry), body, format="json")

    assert response.status_code == 400
    assert list(response_json(response)) == [field]
    assert callbacks == []


def test_it_refuses_malformed_json(api_admin):
    tournament, [entry] = _live("Cup", "Alpha")

    response = api_admin.post(
        _run_url(tournament, entry), data="{nope", content_type="application/json"
    )

    assert response.status_code == 400
    assert list(response_json(response)) == ["body"]


@pytest.mark.parametrize("status", ["scheduled", "finished", "cancelled"])
def test_it_runs_decisions_in_a_live_tournament_only(
    api_admin, django_capture_on_commit_callbacks, status
):
    tournament = make_tournament()
    [entry] = make_entries(tournament, "Alpha")
    if status != "scheduled":
        services.tournament_end(tournament=tournament, cancelled=status == "cancelled")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin.post(_run_url(tournament, entry), format="json")

    assert response.status_code == 400
    assert response_json(response) == {
        "tournament": [f"Spring cup is {status}: only a live one runs"]
    }
    assert callbacks == []


# --- Starting (issue 15, item 1) -----------------------------------------------------------------

EARLY = TOURNAMENT_START - timedelta(minutes=10)


def _start_url(tournament: Tournament) -> str:
    return f"/api/tournaments/{tournament.pk}/start/"


@pytest.mark.parametrize(
    ("body", "ends_at"),
    [
        ({}, EARLY + timedelta(hours=4)),
        ({"ends_at": "2026-06-01T10:00:00Z"}, datetime(2026, 6, 1, 10, 0, tzinfo=UTC)),
        ({"duration": 1800}, EARLY + timedelta(minutes=30)),
    ],
)
def test_it_starts_a_tournament_now_keeping_its_duration_or_with_a_new_end(
    api_admin, body, ends_at
):
    tournament = make_tournament()

    with time_machine.travel(EARLY, tick=False):
        response = api_admin.post(_start_url(tournament), body, format="json")

    data = response_json(response)
    assert response.status_code == 200, data
    assert data["status"] == "live"
    assert (data["starts_at"], data["ends_at"]) == (
        EARLY.isoformat().replace("+00:00", "Z"),
        ends_at.isoformat().replace("+00:00", "Z"),
    )
    assert data["periodic_task"]["enabled"]
    assert PeriodicTask.objects.get(tournament=tournament).expires == ends_at


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ends_at": "2026-06-01T08:00:00Z"}, "ends_at"),
        ({"ends_at": "2026-06-01T10:00:00Z", "duration": 60}, "ends_at"),
        ({"duration": 0}, "duration"),
        ({"duration": "1h"}, "duration"),
        ({"end": "2026-06-01T10:00:00Z"}, "end"),
    ],
)
def test_a_bad_start_names_the_field_and_starts_nothing(api_admin, body, field):
    tournament = make_tournament()

    with time_machine.travel(EARLY, tick=False):
        response = api_admin.post(_start_url(tournament), body, format="json")

    assert response.status_code == 400
    assert list(response_json(response)) == [field]
    tournament.refresh_from_db()
    assert (tournament.status, tournament.starts_at) == ("scheduled", TOURNAMENT_START)


def test_starting_needs_the_change_permission_and_a_scheduled_tournament(api_admin):
    tournament = make_tournament()
    staff = api_client(user_with())

    refused = staff.post(_start_url(tournament), {}, format="json")
    started = api_admin.post(_start_url(tournament), {}, format="json")
    again = api_admin.post(_start_url(tournament), {}, format="json")

    assert refused.status_code == 403
    assert response_json(refused) == {
        "detail": "permission required: tournaments.change_tournament"
    }
    assert started.status_code == 200
    assert again.status_code == 400
    assert "only a scheduled tournament starts" in response_json(again)["status"][0]
