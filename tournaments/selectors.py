"""Reads for the tournaments' pages, API and admin."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, F, QuerySet

from agents.models import Agent
from scheduler.models import TaskEvent
from scheduler.selectors import schedule_names_owned
from tournaments.models import Entry, EquitySnapshot, Tournament, Trade

LEADERBOARD_EVENT = "tournament.leaderboard"

# --- Tournaments ---------------------------------------------------------------------------------


def tournaments_listed(*, status: str | None = None) -> QuerySet[Tournament]:
    """Tournaments, latest start first, each with `entry_count`; no status: all of them."""
    # The periodic task's pause (who, why, until when) is shown with it.
    tournaments = Tournament.objects.select_related("periodic_task__options__paused_by").annotate(
        entry_count=Count("entries")
    )
    if status:
        tournaments = tournaments.filter(status=status)
    return tournaments.order_by("-starts_at", "-id")


def tournament_schedule_names(*, tournaments: Iterable[Tournament]) -> dict[int, list[str]]:
    """Each tournament's periodic tasks by name: its own (the live loop) first, then every
    schedule whose task's parameters name it (tournaments/owners.py); for its page, and for its
    pause and resume."""
    chosen = list(tournaments)
    owned = schedule_names_owned("tournament", [tournament.pk for tournament in chosen])
    names: dict[int, list[str]] = {}
    for tournament in chosen:
        own = [tournament.periodic_task.name] if tournament.periodic_task is not None else []
        others = [name for name in owned.get(str(tournament.pk), []) if name not in own]
        names[tournament.pk] = own + others
    return names


def tournament_by_id(*, tournament_id: int) -> Tournament | None:
    return tournaments_listed().filter(pk=tournament_id).first()


def tournament_leaderboard_at(*, tournament_id: int) -> datetime | None:
    """When the tournament's latest leaderboard event was recorded (None: never ranked)."""
    return (
        TaskEvent.objects.filter(
            type=LEADERBOARD_EVENT, object_type="tournament", object_id=str(tournament_id)
        )
        .order_by("-created_at", "-id")
        .values_list("created_at", flat=True)
        .first()
    )


# --- Entries -------------------------------------------------------------------------------------


def tournament_leaderboard(*, tournament_id: int) -> QuerySet[Entry]:
    """Its entries by rank (not ranked yet: last, by equity), with their agents."""
    return (
        Entry.objects.filter(tournament_id=tournament_id)
        .select_related("agent")
        .order_by(F("rank").asc(nulls_last=True), "-equity", "id")
    )


def tournament_entry(*, tournament_id: int, entry_id: int) -> Entry | None:
    """The entry, if it is one of this tournament's."""
    return (
        Entry.objects.select_related("agent", "tournament")
        .filter(tournament_id=tournament_id, pk=entry_id)
        .first()
    )


def agents_not_entered(*, tournament: Tournament) -> list[Agent]:
    """Active trader agents without an entry in the tournament yet, by name."""
    return list(
        Agent.objects.filter(kind=Agent.Kind.TRADER, is_active=True)
        .exclude(entries__tournament=tournament)
        .order_by("name", "pk")
    )


# --- Trades and equity ---------------------------------------------------------------------------


def tournament_recent_trades(*, tournament_id: int, limit: int) -> list[Trade]:
    """Its latest `limit` trades, latest first, with their entries' agents."""
    return list(
        Trade.objects.filter(entry__tournament_id=tournament_id)
        .select_related("entry__agent")
        .order_by("-executed_at", "-id")[:limit]
    )


def tournament_equity_series(*, tournament_id: int, points: int) -> dict[int, list[EquitySnapshot]]:
    """Each entry's snapshots of the latest `points` rankings, oldest first, by entry id."""
    snapshots = EquitySnapshot.objects.filter(entry__tournament_id=tournament_id)
    # One ranking writes one snapshot per entry, all at the same `at`: the latest `points`
    # distinct times bound what is read, whatever the number of entries.
    times = list(
        snapshots.order_by("-at").values_list("at", flat=True).distinct()[: max(points, 1)]
    )
    series: dict[int, list[EquitySnapshot]] = {}
    if not times:
        return series
    for snapshot in snapshots.filter(at__gte=min(times)).order_by("at", "id"):
        series.setdefault(snapshot.entry_id, []).append(snapshot)
    return series
