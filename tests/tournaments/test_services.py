"""Tournaments' life, decisions, recovery and rankings: services and task bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from scheduler.models import TaskEvent
from scheduler.schedules import periodic_task_next_runs
from scheduler.selectors import upcoming_runs
from tests.factories import TOURNAMENT_START, make_entries, make_tournament
from tournaments import services, tasks
from tournaments.models import Decision, Entry, EquitySnapshot, Tournament, Trade
from tournaments.services import TournamentError

pytestmark = pytest.mark.django_db


def _tournament(**fields: Any) -> Tournament:
    """make_tournament's, on three symbols with 10,000 in cash for each entry."""
    return make_tournament(
        symbols=["ACME", "BOLT", "CRUX"], initial_cash=Decimal("10000"), **fields
    )


def _entries(tournament: Tournament, *strategies: str) -> list[Entry]:
    """Traders 0, 1, ... (slugs trader-0, trader-1, ...) entered with `strategies`, one each."""
    names = [f"Trader {n}" for n in range(len(strategies))]
    return make_entries(tournament, *names, strategies=list(strategies))


def test_it_names_every_bad_field_of_a_new_tournament():
    with pytest.raises(TournamentError) as caught:
        services.tournament_create(
            name=" ",
            starts_at=TOURNAMENT_START,
            ends_at=TOURNAMENT_START,
            symbols=["A", "a"],
            initial_cash=0,
            decision_interval=0,
        )

    assert set(caught.value.errors) == {
        "name",
        "ends_at",
        "symbols",
        "initial_cash",
        "decision_interval",
    }
    assert not Tournament.objects.exists()


def test_entering_agents_is_idempotent_and_gives_each_the_initial_cash():
    tournament = _tournament()
    first = _entries(tournament, "momentum", "random")
    again = services.tournament_initialize_agents(
        tournament=tournament, agents=[entry.agent for entry in first]
    )

    assert again == []
    assert [entry.cash for entry in first] == [Decimal("10000.00")] * 2
    assert [entry.strategy for entry in first] == ["momentum", "random"]


# --- Life ----------------------------------------------------------------------------------------


def test_it_goes_live_with_its_own_periodic_task_and_ends_with_it_disabled():
    tournament = _tournament()

    services.tournament_start(tournament=tournament)
    tournament.refresh_from_db()
    task = PeriodicTask.objects.select_related("interval").get(pk=tournament.periodic_task_id)

    assert tournament.status == Tournament.Status.LIVE
    assert task.task == "tournaments.run_live_tournament_agents"
    assert json.loads(task.kwargs) == {"tournament_id": tournament.pk}
    assert json.loads(task.headers)["scheduler_object"] == f"tournament:{tournament.pk}"
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (60, "seconds")
    assert task.enabled

    services.tournament_end(tournament=tournament)
    tournament.refresh_from_db()
    task.refresh_from_db()

    assert tournament.status == Tournament.Status.FINISHED
    assert not task.enabled
    with pytest.raises(TournamentError):
        services.tournament_end(tournament=tournament)


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (TOURNAMENT_START - timedelta(seconds=1), "scheduled"),
        (TOURNAMENT_START, "live"),
        (TOURNAMENT_START + timedelta(hours=4) - timedelta(seconds=1), "live"),
        (TOURNAMENT_START + timedelta(hours=4), "finished"),
    ],
)
def test_transitions_start_and_end_tournaments_at_their_times(now, status):
    tournament = _tournament()

    with time_machine.travel(now, tick=False):
        services.transitions_check()

    tournament.refresh_from_db()
    assert tournament.status == status


def test_a_tournament_that_starts_and_ends_between_two_checks_ends_without_trading():
    tournament = _tournament()

    services.transitions_check(now=TOURNAMENT_START + timedelta(days=1))

    tournament.refresh_from_db()
    assert tournament.status == Tournament.Status.FINISHED
    assert tournament.periodic_task is None


# --- Decisions -----------------------------------------------------------------------------------


def test_the_same_decision_twice_trades_once():
    tournament = _tournament()
    [entry] = _entries(tournament, "buy_and_hold")
    services.tournament_start(tournament=tournament)

    first = services.decision_make(entry=entry, tick=5)
    second = services.decision_make(entry=entry, tick=5)
    repeated = tasks.run_agent_decision.apply(kwargs={"entry_id": entry.pk, "tick": 5}).get()

    assert first.made
    assert first.trades > 0
    assert not second.made
    assert repeated["made"] is False
    assert Decision.objects.filter(entry=entry).count() == 1
    assert Trade.objects.filter(entry=entry).count() == first.trades
    entry.refresh_from_db()
    assert entry.decision_count == 1


def test_an_entrys_portfolio_is_what_its_trades_imply():
    tournament = _tournament()
    entries = _entries(tournament, "momentum", "mean_reversion", "random", "buy_and_hold")
    services.tournament_start(tournament=tournament)

    for tick in range(1, 30):
        for entry in entries:
            services.decision_make(entry=Entry.objects.get(pk=entry.pk), tick=tick)

    for entry in Entry.objects.filter(tournament=tournament):
        cash, positions = services.portfolio_from_trades(entry)
        assert entry.cash >= 0
        assert (entry.cash, entry.positions) == (cash, positions)
        assert entry.decision_count == 29
        assert entry.last_tick == 29
    assert Trade.objects.filter(entry__tournament=tournament).exists()


def test_every_trade_is_at_the_markets_price():
    tournament = _tournament()
    [entry] = _entries(tournament, "random")
    services.tournament_start(tournament=tournament)
    market = services.market_of(tournament)

    for tick in range(1, 10):
        services.decision_make(entry=Entry.objects.get(pk=entry.pk), tick=tick)

    for trade in Trade.objects.filter(entry=entry):
        assert trade.price == services.money(market.price(trade.symbol, trade.tick))


def test_the_live_round_queues_one_decision_per_active_entry(monkeypatch):
    tournament = _tournament()
    entries = _entries(tournament, "momentum", "random", "buy_and_hold")
    Entry.objects.filter(pk=entries[2].pk).update(status=Entry.Status.STALE)
    services.tournament_start(tournament=tournament)
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks, "_queue", lambda task, **kwargs: queued.append(kwargs))

    with time_machine.travel(TOURNAMENT_START + timedelta(minutes=10), tick=False):
        result = tasks.run_live_tournament_agents.apply(
            kwargs={"tournament_id": tournament.pk}
        ).get()

    assert result["queued"] == 2
    assert result["tick"] == 10
    assert sorted(q["entry_id"] for q in queued) == [entries[0].pk, entries[1].pk]


def test_a_decision_for_a_tick_that_has_passed_is_not_made():
    tournament = _tournament()
    [entry] = _entries(tournament, "random")
    services.tournament_start(tournament=tournament)
    services.decision_make(entry=entry, tick=7)

    late = services.decision_make(entry=Entry.objects.get(pk=entry.pk), tick=3)

    assert not late.made
    assert "has passed" in late.reasoning
    assert list(Decision.objects.values_list("tick", flat=True)) == [7]


def test_no_decision_is_made_outside_the_live_time():
    tournament = _tournament()
    [entry] = _entries(tournament, "buy_and_hold")

    before = services.decision_make(entry=entry, tick=1)
    services.tournament_start(tournament=tournament)
    services.tournament_end(tournament=tournament)
    after = services.decision_make(entry=Entry.objects.get(pk=entry.pk), tick=2)

    assert (before.made, after.made) == (False, False)
    assert "scheduled" in before.reasoning
    assert not Decision.objects.exists()
    with pytest.raises(TournamentError):
        services.entry_recover(entry=entry)


# --- Recovery ------------------------------------------------------------------------------------


def test_a_crashed_entry_is_found_stale_and_rebuilt_from_its_trades(monkeypatch):
    tournament = _tournament()
    [entry, other] = _entries(tournament, "momentum", "random")
    services.tournament_start(tournament=tournament)
    for tick in range(1, 8):
        services.decision_make(entry=Entry.objects.get(pk=entry.pk), tick=tick)
    # A worker died half-way: the row's portfolio is wrong and its heartbeat old.
    Entry.objects.filter(pk=entry.pk).update(
        cash=Decimal("1.00"),
        positions={"ACME": 999},
        heartbeat_at=datetime.now(UTC) - timedelta(minutes=11),
    )
    queued: list[int] = []
    monkeypatch.setattr(tasks, "_queue", lambda task, **kwargs: queued.append(kwargs["entry_id"]))

    tasks.recover_crashed_agents.apply().get()
    assert Entry.objects.get(pk=entry.pk).status == Entry.Status.STALE
    tasks.recover_agent_state.apply(kwargs={"entry_id": entry.pk}).get()

    recovered = Entry.objects.get(pk=entry.pk)
    assert queued == [entry.pk]
    assert recovered.status == Entry.Status.ACTIVE
    assert (recovered.cash, recovered.positions) == services.portfolio_from_trades(recovered)
    assert recovered.last_tick == 7
    assert Entry.objects.get(pk=other.pk).status == Entry.Status.ACTIVE


# --- Rankings ------------------------------------------------------------------------------------


def test_rankings_value_every_entry_at_the_market_and_keep_a_snapshot():
    tournament = _tournament()
    entries = _entries(tournament, "momentum", "mean_reversion", "buy_and_hold")
    services.tournament_start(tournament=tournament)
    for tick in range(1, 15):
        for entry in entries:
            services.decision_make(entry=Entry.objects.get(pk=entry.pk), tick=tick)

    with time_machine.travel(TOURNAMENT_START + timedelta(minutes=14), tick=False):
        board = tasks.update_rankings.apply().get()

    ranked = list(Entry.objects.filter(tournament=tournament).order_by("rank"))
    assert board == {"ranked": {str(tournament.pk): 3}}
    assert [entry.rank for entry in ranked] == [1, 2, 3]
    assert ranked[0].equity >= ranked[1].equity >= ranked[2].equity
    assert EquitySnapshot.objects.filter(entry__tournament=tournament).count() == 3
    event = TaskEvent.objects.get(type="tournament.leaderboard")
    assert [row["rank"] for row in event.payload["leaderboard"]] == [1, 2, 3]
    assert event.object_id == str(tournament.pk)


# --- Starting early (issue 15, item 1) -----------------------------------------------------------

EARLY = TOURNAMENT_START - timedelta(minutes=10)


def test_started_before_its_start_it_starts_now_keeps_its_duration_and_ticks(monkeypatch):
    tournament = _tournament()
    entries = _entries(tournament, "random", "momentum")
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks, "_queue", lambda task, **kwargs: queued.append(kwargs))

    with time_machine.travel(EARLY, tick=False):
        services.tournament_start(tournament=tournament)
    tournament.refresh_from_db()
    task = PeriodicTask.objects.get(tournament=tournament)

    assert (tournament.starts_at, tournament.ends_at) == (EARLY, EARLY + timedelta(hours=4))
    assert (task.start_time, task.expires) == (EARLY, EARLY + timedelta(hours=4))
    for minute in (1, 2, 3):
        with time_machine.travel(EARLY + timedelta(minutes=minute, seconds=5), tick=False):
            round_ = tasks.run_live_tournament_agents.apply(
                kwargs={"tournament_id": tournament.pk}
            ).get()
            for item in queued:
                tasks.run_agent_decision.apply(
                    kwargs={"entry_id": item["entry_id"], "tick": item["tick"]}
                ).get()
            queued.clear()
        assert round_["tick"] == minute
    ticks = Decision.objects.order_by("tick", "entry_id").values_list("tick", "entry_id")
    assert list(ticks) == [(tick, entry.pk) for tick in (1, 2, 3) for entry in entries]


@pytest.mark.parametrize(
    ("new_end", "ends_at"),
    [
        ({}, EARLY + timedelta(hours=4)),
        ({"ends_at": EARLY + timedelta(hours=1)}, EARLY + timedelta(hours=1)),
        ({"duration": timedelta(minutes=30)}, EARLY + timedelta(minutes=30)),
    ],
)
def test_it_ends_after_its_duration_or_at_the_end_given(new_end, ends_at):
    tournament = _tournament()

    services.tournament_start(tournament=tournament, now=EARLY, **new_end)
    tournament.refresh_from_db()

    assert (tournament.starts_at, tournament.ends_at) == (EARLY, ends_at)
    assert PeriodicTask.objects.get(tournament=tournament).expires == ends_at


def test_started_on_time_or_late_its_dates_stay():
    tournament = _tournament()

    services.tournament_start(tournament=tournament, now=TOURNAMENT_START + timedelta(minutes=5))
    tournament.refresh_from_db()

    assert (tournament.starts_at, tournament.ends_at) == (
        TOURNAMENT_START,
        TOURNAMENT_START + timedelta(hours=4),
    )


@pytest.mark.parametrize(
    ("new_end", "field"),
    [
        ({"ends_at": EARLY}, "ends_at"),
        ({"ends_at": EARLY + timedelta(hours=1), "duration": timedelta(hours=1)}, "ends_at"),
        ({"duration": timedelta(0)}, "duration"),
    ],
)
def test_it_refuses_an_end_that_is_not_after_now(new_end, field):
    tournament = _tournament()

    with pytest.raises(TournamentError) as caught:
        services.tournament_start(tournament=tournament, now=EARLY, **new_end)

    assert set(caught.value.errors) == {field}
    tournament.refresh_from_db()
    assert (tournament.status, tournament.starts_at) == (
        Tournament.Status.SCHEDULED,
        TOURNAMENT_START,
    )
    assert not PeriodicTask.objects.exists()


def test_moving_a_live_tournaments_end_moves_its_periodic_tasks_expiry():
    tournament = _tournament()
    services.tournament_start(tournament=tournament, now=EARLY)

    services.tournament_update(tournament=tournament, ends_at=EARLY + timedelta(hours=8))

    task = PeriodicTask.objects.get(tournament=tournament)
    assert task.expires == EARLY + timedelta(hours=8)
    with pytest.raises(TournamentError) as caught:
        services.tournament_update(tournament=tournament, starts_at=TOURNAMENT_START)
    assert set(caught.value.errors) == {"starts_at"}


def test_its_periodic_task_shows_no_run_after_its_end():
    tournament = _tournament(decision_interval=600)
    services.tournament_start(tournament=tournament, now=EARLY, duration=timedelta(minutes=45))
    task = PeriodicTask.objects.get(tournament=tournament)
    ends_at = EARLY + timedelta(minutes=45)

    runs = periodic_task_next_runs(task, count=100, now=EARLY)
    upcoming = upcoming_runs(now=EARLY, hours=24, slot_minutes=30)
    [row] = [row for row in upcoming["rows"] if row["id"] == task.pk]

    assert runs
    assert max(runs) < ends_at
    assert len(runs) <= 5
    assert row["runs"] == len(runs)
    assert sum(row["counts"]) == len(runs)
