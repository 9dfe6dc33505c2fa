"""The tournaments' admin through the Django test client: adding a tournament through its
service, entries inline, the life actions (start, end, cancel, enter agents), its periodic task
(run now, pause, resume), recovering and running entries, and the read-only record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from agents.services import agent_create
from scheduler.models import AuditEntry
from tests.clients import client_for
from tests.factories import (
    TOURNAMENT_START,
    make_entries,
    make_tournament,
    make_trader,
    user_with,
)
from tests.forms import tournament_form
from tournaments import services
from tournaments.models import Decision, Entry, EquitySnapshot, Tournament, Trade

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:tournaments_tournament_changelist")
ADD = reverse("admin:tournaments_tournament_add")
ENTRIES = reverse("admin:tournaments_entry_changelist")


def _act(client: Client, changelist: str, action: str, *ids: int) -> Any:
    return client.post(changelist, {"action": action, "_selected_action": list(ids)}, follow=True)


def _page(response: Any) -> str:
    return str(response.content.decode())


def _status(tournament: Tournament) -> str:
    tournament.refresh_from_db()
    return str(tournament.status)


# --- Adding and changing a tournament ------------------------------------------------------------


def _form_errors(response: Any) -> dict[str, list[str]]:
    return dict(response.context["adminform"].form.errors)


def test_it_adds_a_tournament_through_its_service(admin):
    response = admin.post(ADD, tournament_form())

    assert response.status_code == 302, _form_errors(response)
    tournament = Tournament.objects.get()
    assert tournament.name == "Summer cup"
    assert tournament.symbols == ["ACME", "BOLT", "CRUX"]
    assert tournament.initial_cash == Decimal("5000.00")
    assert tournament.status == Tournament.Status.SCHEDULED
    assert response["Location"] == reverse("admin:tournaments_tournament_changelist")


def test_it_names_every_field_the_service_refuses_and_adds_nothing(admin):
    make_tournament("Summer cup")

    response = admin.post(
        ADD,
        tournament_form(symbols="ACME acme", ends_at_1="08:00:00", decision_interval="0"),
    )

    errors = _form_errors(response)
    assert response.status_code == 200
    assert "exists" in " ".join(errors["name"])
    assert "twice" in " ".join(errors["symbols"])
    assert errors["ends_at"] == ["must be after starts_at"]
    assert "86400" in " ".join(errors["decision_interval"])
    assert Tournament.objects.count() == 1


def test_its_page_shows_the_entries_inline_with_the_strategy_editable_before_the_start(admin):
    tournament = make_tournament()
    make_entries(tournament, "Alpha <b>", "Beta")
    url = reverse("admin:tournaments_tournament_change", args=[tournament.pk])

    before = _page(admin.get(url))
    services.tournament_start(tournament=tournament)
    after = _page(admin.get(url))

    assert "Alpha &lt;b&gt;" in before
    assert "Beta" in before
    assert 'name="entries-0-strategy"' in before
    assert "none yet (made when it starts)" in before
    assert f'href="/tournaments/{tournament.pk}/"' in before
    assert 'name="entries-0-strategy"' not in after  # it is live: read-only
    tournament.refresh_from_db()
    assert tournament.periodic_task is not None
    periodic = reverse(
        "admin:django_celery_beat_periodictask_change", args=[tournament.periodic_task.pk]
    )
    assert periodic in after
    assert 'name="symbols"' not in after
    assert 'name="starts_at_0"' not in after  # the market's ticks count from it
    assert 'name="ends_at_0"' in after


def test_it_changes_an_entrys_strategy_inline_before_the_start(admin):
    tournament = make_tournament()
    [entry] = make_entries(tournament, "Alpha")
    url = reverse("admin:tournaments_tournament_change", args=[tournament.pk])

    response = admin.post(
        url,
        {
            "name": tournament.name,
            "starts_at_0": "2026-06-01",
            "starts_at_1": "09:00:00",
            "ends_at_0": "2026-06-01",
            "ends_at_1": "13:00:00",
            "entries-TOTAL_FORMS": "1",
            "entries-INITIAL_FORMS": "1",
            "entries-MIN_NUM_FORMS": "0",
            "entries-MAX_NUM_FORMS": "1000",
            "entries-0-id": str(entry.pk),
            "entries-0-tournament": str(tournament.pk),
            "entries-0-strategy": "random",
        },
    )

    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.strategy == "random"


def test_it_refuses_an_end_before_the_start_of_a_live_tournament(admin):
    tournament = make_tournament()
    services.tournament_start(tournament=tournament)
    url = reverse("admin:tournaments_tournament_change", args=[tournament.pk])

    response = admin.post(
        url,
        {
            "name": tournament.name,
            "ends_at_0": "2026-06-01",
            "ends_at_1": "08:00:00",
            "entries-TOTAL_FORMS": "0",
            "entries-INITIAL_FORMS": "0",
            "entries-MIN_NUM_FORMS": "0",
            "entries-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 200
    assert _form_errors(response) == {"ends_at": ["must be after starts_at"]}


def test_a_live_tournament_is_not_deleted(admin):
    live, scheduled = make_tournament("Live"), make_tournament("Scheduled")
    services.tournament_start(tournament=live)

    refused = admin.post(reverse("admin:tournaments_tournament_delete", args=[live.pk]))
    deleted = admin.post(
        reverse("admin:tournaments_tournament_delete", args=[scheduled.pk]), {"post": "yes"}
    )

    assert refused.status_code == 403
    assert deleted.status_code == 302
    assert list(Tournament.objects.values_list("name", flat=True)) == ["Live"]
    assert "delete_selected" not in _page(admin.get(CHANGELIST))


# --- Life: start, end, cancel --------------------------------------------------------------------


def test_it_starts_ends_and_cancels_tournaments(admin):
    spring, summer = make_tournament("Spring"), make_tournament("Summer")

    started = _act(admin, CHANGELIST, "start_tournaments", spring.pk, summer.pk)
    assert (_status(spring), _status(summer)) == ("live", "live")
    assert "Started: Spring, Summer." in _page(started)
    assert PeriodicTask.objects.get(tournament=spring).enabled

    ended = _act(admin, CHANGELIST, "end_tournaments", spring.pk)
    cancelled = _act(admin, CHANGELIST, "cancel_tournaments", summer.pk)

    assert (_status(spring), _status(summer)) == ("finished", "cancelled")
    assert "Ended: Spring." in _page(ended)
    assert "Cancelled: Summer." in _page(cancelled)
    assert not PeriodicTask.objects.filter(enabled=True).exists()


def test_it_says_why_a_transition_was_refused_and_goes_on_with_the_others(admin):
    live, scheduled = make_tournament("Live"), make_tournament("Scheduled")
    services.tournament_start(tournament=live)

    response = _act(admin, CHANGELIST, "start_tournaments", live.pk, scheduled.pk)

    page = _page(response)
    assert response.status_code == 200
    assert "Live was not started: only a scheduled tournament starts, not a live one" in page
    assert "Started: Scheduled." in page
    assert _status(scheduled) == "live"

    services.tournament_end(tournament=live)
    again = _page(_act(admin, CHANGELIST, "end_tournaments", live.pk))
    assert "Live was not ended: Live is finished already" in again


def test_it_enters_every_active_trader_agent_not_entered_yet(admin):
    tournament = make_tournament()
    [entered] = make_entries(tournament, "Already in")
    fresh = make_trader("Fresh")
    make_trader("Paused", is_active=False)
    agent_create(name="Chatty", kind="chat")

    first = _page(_act(admin, CHANGELIST, "enter_trader_agents", tournament.pk))
    second = _page(_act(admin, CHANGELIST, "enter_trader_agents", tournament.pk))

    assert set(tournament.entries.values_list("agent__name", flat=True)) == {"Already in", "Fresh"}
    entry = tournament.entries.get(agent=fresh)
    assert entry.cash == tournament.initial_cash
    assert entered.strategy == "buy_and_hold"
    assert "1 agent entered into Spring cup." in first
    assert "every active trader agent is in it already" in second


def test_it_enters_no_agent_into_a_finished_tournament(admin):
    tournament = make_tournament()
    services.tournament_end(tournament=tournament)
    make_trader("Fresh")

    page = _page(_act(admin, CHANGELIST, "enter_trader_agents", tournament.pk))

    assert "No agent was entered into Spring cup: Spring cup is finished" in page
    assert not Entry.objects.exists()


# --- Its periodic task: run now, pause, resume ---------------------------------------------------


def test_it_runs_a_live_tournaments_agents_now_through_its_periodic_task(
    admin, django_capture_on_commit_callbacks
):
    live, scheduled = make_tournament("Live"), make_tournament("Scheduled")
    services.tournament_start(tournament=live)
    live.refresh_from_db()
    assert live.periodic_task is not None

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _act(admin, CHANGELIST, "run_now", live.pk, scheduled.pk)

    page = _page(response)
    audit = AuditEntry.objects.get(action="run_now")
    assert audit.periodic_task_name == live.periodic_task.name
    assert audit.source == "admin"
    assert [c for c in callbacks if c.__qualname__.startswith("task_enqueue.")]
    assert f"Queued to run now: {live.periodic_task.name}" in page
    assert "Scheduled was not run: it is scheduled" in page


def test_it_runs_the_agents_itself_when_the_periodic_task_is_gone(
    admin, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_ENABLED = False  # the run happens in the caller: its result is seen here
    tournament = make_tournament()
    make_entries(tournament, "Alpha")
    services.tournament_start(tournament=tournament)
    PeriodicTask.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        response = _act(admin, CHANGELIST, "run_now", tournament.pk)

    assert "Queued to run now: the agents of Spring cup" in _page(response)
    assert Decision.objects.filter(entry__tournament=tournament).count() == 1


def test_it_pauses_and_resumes_a_tournaments_periodic_task(admin):
    tournament, other = make_tournament("Mine"), make_tournament("Other")
    services.tournament_start(tournament=tournament)
    services.tournament_start(tournament=other)

    def enabled() -> dict[str, bool]:
        return dict(Tournament.objects.values_list("name", "periodic_task__enabled"))

    asked = _page(_act(admin, CHANGELIST, "pause_schedules", tournament.pk))
    before = enabled()
    paused = _page(
        admin.post(
            CHANGELIST,
            {
                "action": "pause_schedules",
                "_selected_action": [tournament.pk],
                "post": "yes",
                "note": "market data late",
                "until": "2h",
            },
            follow=True,
        )
    )
    after_pause = enabled()
    listed = _page(admin.get(CHANGELIST))
    resumed = _page(_act(admin, CHANGELIST, "resume_schedules", tournament.pk))

    assert "Mine: its periodic task" in asked
    assert before == {"Mine": True, "Other": True}
    assert after_pause == {"Mine": False, "Other": True}
    assert "1 schedule paused." in paused
    who = get_user_model().objects.get(is_superuser=True).get_username()
    assert listed.count(f"(paused by {who} until ") == 1
    assert listed.count(": market data late)") == 1
    assert enabled() == {"Mine": True, "Other": True}
    assert "1 schedule resumed." in resumed
    assert AuditEntry.objects.filter(action="paused", source="admin").count() == 1


def test_it_resumes_no_schedule_of_a_tournament_that_is_over(admin):
    tournament, scheduled = make_tournament("Over"), make_tournament("Not started")
    services.tournament_start(tournament=tournament)
    services.tournament_end(tournament=tournament)

    page = _page(_act(admin, CHANGELIST, "resume_schedules", tournament.pk, scheduled.pk))

    assert "Over was not resumed: it is finished" in page
    assert "Not started has no periodic task" in page
    assert not PeriodicTask.objects.get().enabled


def test_it_offers_the_schedule_actions_only_with_the_periodic_task_permission():
    make_tournament()
    without = client_for(user_with("tournaments.view_tournament", "tournaments.change_tournament"))
    allowed = client_for(
        user_with(
            "tournaments.view_tournament",
            "tournaments.change_tournament",
            "django_celery_beat.change_periodictask",
        )
    )

    page = _page(without.get(CHANGELIST))
    assert "start_tournaments" in page
    assert "pause_schedules" not in page
    assert "run_now" not in page
    assert "pause_schedules" in _page(allowed.get(CHANGELIST))
    assert "run_now" in _page(allowed.get(CHANGELIST))


# --- Entries: recover, run a decision ------------------------------------------------------------


def test_it_recovers_an_entry_from_its_trades(admin):
    tournament = make_tournament()
    [entry] = make_entries(tournament, "Alpha")
    services.tournament_start(tournament=tournament)
    services.decision_make(entry=entry, tick=3)
    cash, positions = services.portfolio_from_trades(entry)
    Entry.objects.filter(pk=entry.pk).update(
        cash=Decimal("1.00"), positions={"ACME": 999}, status=Entry.Status.STALE
    )

    page = _page(_act(admin, ENTRIES, "recover_entries", entry.pk))

    entry.refresh_from_db()
    assert (entry.cash, entry.positions, entry.status) == (cash, positions, "active")
    assert f"Recovered: Alpha ({cash} cash)." in page


def test_it_recovers_no_entry_of_a_tournament_that_is_over(admin):
    tournament = make_tournament()
    [entry] = make_entries(tournament, "Alpha")
    services.tournament_end(tournament=tournament)

    page = _page(_act(admin, ENTRIES, "recover_entries", entry.pk))

    entry.refresh_from_db()
    assert entry.status == Entry.Status.FINISHED
    assert "was not recovered: the tournament is finished" in page


def test_it_queues_one_decision_of_the_selected_entries(admin, django_capture_on_commit_callbacks):
    tournament = make_tournament()
    entries = make_entries(tournament, "Alpha", "Beta")
    services.tournament_start(tournament=tournament)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        page = _page(_act(admin, ENTRIES, "run_decisions", *[e.pk for e in entries]))

    assert len([c for c in callbacks if c.__qualname__.startswith("task_enqueue.")]) == 2
    assert "Queued a decision of: Alpha (task id" in page


def test_it_offers_running_entries_only_with_the_run_permission():
    tournament = make_tournament()
    make_entries(tournament, "Alpha")
    without = client_for(user_with("tournaments.view_entry", "tournaments.change_entry"))
    allowed = client_for(
        user_with("tournaments.view_entry", "tournaments.change_entry", "scheduler.run_tasks")
    )

    assert "run_decisions" not in _page(without.get(ENTRIES))
    assert "recover_entries" in _page(without.get(ENTRIES))
    assert "run_decisions" in _page(allowed.get(ENTRIES))


def test_an_entry_is_read_only_but_for_its_strategy_before_the_start(admin):
    tournament = make_tournament()
    [entry] = make_entries(tournament, "Alpha")
    url = reverse("admin:tournaments_entry_change", args=[entry.pk])

    before = _page(admin.get(url))
    services.tournament_start(tournament=tournament)
    after = _page(admin.get(url))

    assert 'name="strategy"' in before
    assert 'name="cash"' not in before
    assert 'name="strategy"' not in after
    assert admin.get(reverse("admin:tournaments_entry_add")).status_code == 403


# --- The record: decisions, trades, equity -------------------------------------------------------


def test_trades_snapshots_and_decisions_are_read_only_lists_with_filters(admin):
    tournament = make_tournament()
    [entry] = make_entries(tournament, "Alpha")
    services.tournament_start(tournament=tournament)
    services.decision_make(entry=entry, tick=3)
    services.rankings_update(tournament=tournament, now=TOURNAMENT_START + timedelta(minutes=3))
    trade = Trade.objects.get(entry=entry, symbol="ACME")
    snapshot = EquitySnapshot.objects.get()
    decision = Decision.objects.get()
    by_tournament = f"?entry__tournament__id__exact={tournament.pk}"

    for model, obj in (("trade", trade), ("equitysnapshot", snapshot), ("decision", decision)):
        changelist = reverse(f"admin:tournaments_{model}_changelist")
        listed = admin.get(changelist + by_tournament)
        shown = _page(admin.get(reverse(f"admin:tournaments_{model}_change", args=[obj.pk])))
        assert listed.status_code == 200, model
        assert "Alpha in Spring cup" in _page(listed), model
        assert admin.get(reverse(f"admin:tournaments_{model}_add")).status_code == 403
        assert 'type="submit" value="Save"' not in shown, model
        deleted = admin.post(reverse(f"admin:tournaments_{model}_delete", args=[obj.pk]))
        assert deleted.status_code == 403, model

    bought = admin.get(reverse("admin:tournaments_trade_changelist") + "?side__exact=buy")
    assert "ACME" in _page(bought)


# --- Starting before the start time (issue 15, item 1) -------------------------------------------

EARLY = TOURNAMENT_START - timedelta(minutes=10)


def test_the_start_action_starts_an_early_tournament_now_keeping_its_duration(admin):
    tournament = make_tournament()

    with time_machine.travel(EARLY, tick=False):
        response = _act(admin, CHANGELIST, "start_tournaments", tournament.pk)
    tournament.refresh_from_db()

    assert "Started: Spring cup." in _page(response)
    assert (tournament.status, tournament.starts_at) == ("live", EARLY)
    assert tournament.ends_at == EARLY + timedelta(hours=4)
    assert PeriodicTask.objects.get(tournament=tournament).expires == tournament.ends_at


def _change_form(tournament: Tournament, **fields: str) -> dict[str, str]:
    return {
        "name": tournament.name,
        "starts_at_0": "2026-06-01",
        "starts_at_1": "09:00:00",
        "ends_at_0": "2026-06-01",
        "ends_at_1": "13:00:00",
        "entries-TOTAL_FORMS": "0",
        "entries-INITIAL_FORMS": "0",
        "entries-MIN_NUM_FORMS": "0",
        "entries-MAX_NUM_FORMS": "1000",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "ends_at"),
    [
        ({}, EARLY + timedelta(hours=4)),
        ({"ends_at_1": "10:30:00"}, datetime(2026, 6, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_save_and_start_now_starts_it_now_with_its_duration_or_the_end_changed(
    admin, fields, ends_at
):
    tournament = make_tournament()
    url = reverse("admin:tournaments_tournament_change", args=[tournament.pk])

    with time_machine.travel(EARLY, tick=False):
        page = _page(admin.get(url))
        response = admin.post(url, _change_form(tournament, _start_now="1", **fields), follow=True)
    tournament.refresh_from_db()

    assert 'name="_start_now"' in page
    assert "Started: Spring cup, live from 2026-06-01 08:50" in _page(response)
    assert (tournament.status, tournament.starts_at, tournament.ends_at) == (
        "live",
        EARLY,
        ends_at,
    )
    assert PeriodicTask.objects.get(tournament=tournament).expires == ends_at
    assert 'name="_start_now"' not in _page(admin.get(url))


def test_moving_the_end_of_a_live_tournament_moves_its_periodic_tasks_expiry(admin):
    tournament = make_tournament()
    services.tournament_start(tournament=tournament, now=EARLY)
    url = reverse("admin:tournaments_tournament_change", args=[tournament.pk])

    response = admin.post(
        url,
        {
            "name": tournament.name,
            "ends_at_0": "2026-06-01",
            "ends_at_1": "20:00:00",
            "entries-TOTAL_FORMS": "0",
            "entries-INITIAL_FORMS": "0",
            "entries-MIN_NUM_FORMS": "0",
            "entries-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302
    expected = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)
    assert PeriodicTask.objects.get(tournament=tournament).expires == expected
