"""Shapes of the tournaments' API: what requests may carry (types only) and what answers look
like. Values are checked by the catalog (a run's parameters), as everywhere else."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from scheduler.api import StrictSerializer, absolute
from scheduler.schedules import pause_dict
from tournaments.models import Entry, Tournament


class StrictIntegerField(serializers.IntegerField):
    """A JSON whole number and nothing else: DRF's IntegerField would take "5", 5.0 or true."""

    default_error_messages = {"invalid": "must be a whole number, not {kind}"}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid", kind=type(data).__name__)
        return int(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    """true or false: DRF's BooleanField would take "yes", "0" or 1."""

    default_error_messages = {"invalid": "must be true or false, not {kind}"}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", kind=type(data).__name__)
        return data


# --- Tournaments ---------------------------------------------------------------------------------


class TournamentListQuerySerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(
        choices=Tournament.Status.values, required=False, help_text="only the tournaments in it"
    )


class PeriodicTaskRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    pause = serializers.SerializerMethodField(
        help_text="who paused it, why and until when (as /api/schedules/ shows it); null when "
        "it is not paused"
    )

    def get_pause(self, periodic_task: Any) -> dict[str, Any] | None:
        return pause_dict(periodic_task)


class TournamentSerializer(serializers.Serializer[Any]):
    """Read from `tournaments.selectors.tournaments_listed` (it counts the entries)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Tournament.Status.values)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    symbols = serializers.ListField(child=serializers.CharField())
    initial_cash = serializers.DecimalField(max_digits=14, decimal_places=2)
    decision_interval = serializers.IntegerField(help_text="seconds between decisions")
    market_seed = serializers.IntegerField()
    entry_count = serializers.IntegerField()
    periodic_task = PeriodicTaskRefSerializer(
        allow_null=True, help_text="the schedule that runs its agents (made when it goes live)"
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()
    leaderboard_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField(help_text="its live page, for staff")

    def get_url(self, tournament: Tournament) -> str:
        return absolute(self.context.get("request"), "api-tournament-detail", tournament.pk)

    def get_leaderboard_url(self, tournament: Tournament) -> str:
        return absolute(self.context.get("request"), "api-tournament-leaderboard", tournament.pk)

    def get_page_url(self, tournament: Tournament) -> str:
        return absolute(self.context.get("request"), "tournaments-page", tournament.pk)


class TournamentStartSerializer(StrictSerializer):
    ends_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="a new end (default: its end keeps the tournament's duration)",
    )
    duration = StrictIntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=36_525 * 86_400,
        help_text="a new duration in seconds from its start (now, when started early)",
    )


# --- Entries -------------------------------------------------------------------------------------


class EntrySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="the entry's id")
    agent = serializers.CharField(source="agent.slug", help_text="the agent's slug")
    name = serializers.CharField(source="agent.name", help_text="the agent's name")
    strategy = serializers.CharField()
    rank = serializers.IntegerField(allow_null=True, help_text="null until the first ranking")
    equity = serializers.DecimalField(max_digits=14, decimal_places=2)
    cash = serializers.DecimalField(max_digits=14, decimal_places=2)
    positions = serializers.DictField(child=serializers.IntegerField(), help_text="{symbol: n}")
    status = serializers.ChoiceField(choices=Entry.Status.values)
    decisions = serializers.IntegerField(source="decision_count")
    last_tick = serializers.IntegerField(help_text="the latest tick decided; -1: none yet")
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    run_url = serializers.SerializerMethodField(help_text="POST it to run one decision now")

    def get_run_url(self, entry: Entry) -> str:
        return absolute(
            self.context.get("request"), "api-tournament-entry-run", entry.tournament_id, entry.pk
        )


class EntryRunSerializer(StrictSerializer):
    tick = StrictIntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        help_text="the market tick to decide at (default: the tick in progress when it runs)",
    )
    recover_from_crash = StrictBooleanField(
        required=False,
        default=False,
        help_text="rebuild the entry from its trades first (as crash recovery does)",
    )
