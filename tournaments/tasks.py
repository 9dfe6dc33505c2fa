"""Tournament tasks (the Agonus seed's table): thin, each loads its rows and calls one service."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agents.errors import RETRY_POLICY
from agents.models import Agent
from scheduler.catalog import Params, catalog_task
from scheduler.services import task_queue, task_run_with_retries
from tournaments import services
from tournaments.models import Entry, Tournament


def _queue(task: Any, *, tournament_id: int, **kwargs: Any) -> None:
    task_queue(task, owner=("tournament", tournament_id), **kwargs)


class TournamentParams(Params):
    tournament_id: int = Field(gt=0, description="The tournament.")


class EntryParams(Params):
    entry_id: int = Field(gt=0, description="The entry (an agent in a tournament).")


class DecisionParams(EntryParams):
    recover_from_crash: bool = Field(False, description="Rebuild the entry first.")
    tick: int | None = Field(None, ge=0, description="The market tick (default: now's).")


class InitializeParams(TournamentParams):
    agents: list[str] = Field(min_length=1, description="Slugs of the agents to enter.")


@catalog_task(
    name="tournaments.run_live_tournament_agents",
    description="Queue one decision for every active entry of a live tournament.",
    params=TournamentParams,
)
def run_live_tournament_agents(tournament_id: int) -> dict[str, Any]:
    tournament = Tournament.objects.get(pk=tournament_id)
    if tournament.status != Tournament.Status.LIVE:
        return {"tournament": tournament_id, "queued": 0, "reason": f"it is {tournament.status}"}
    tick = services.market_of(tournament).tick_at(services.timezone.now())
    entries = list(
        tournament.entries.filter(status=Entry.Status.ACTIVE).values_list("pk", flat=True)
    )
    for entry_id in entries:
        _queue(run_agent_decision, tournament_id=tournament_id, entry_id=entry_id, tick=tick)
    return {"tournament": tournament_id, "tick": tick, "queued": len(entries)}


@catalog_task(
    name="tournaments.run_agent_decision",
    description="One decision of an entry: load its state, decide, trade, save, heartbeat.",
    params=DecisionParams,
    bind=True,
)
def run_agent_decision(
    self: Any, entry_id: int, recover_from_crash: bool = False, tick: int | None = None
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        entry = Entry.objects.get(pk=entry_id)
        if recover_from_crash:
            entry = services.entry_recover(entry=entry)
        outcome = services.decision_make(entry=entry, tick=tick, task_id=str(self.request.id or ""))
        return {
            "entry": outcome.entry,
            "tick": outcome.tick,
            "made": outcome.made,
            "trades": outcome.trades,
        }

    # An entry's decision is agent work: it retries as the agents' tasks do.
    return task_run_with_retries(self, work, policy=RETRY_POLICY)


@catalog_task(
    name="tournaments.check_transitions",
    description="Start tournaments whose start came, end those whose end came.",
)
def check_transitions() -> dict[str, Any]:
    return services.transitions_check()


@catalog_task(
    name="tournaments.recover_crashed_agents",
    description="Entries silent for 10 minutes in live tournaments are marked stale and recovered.",
)
def recover_crashed_agents() -> dict[str, Any]:
    stale = services.stale_entries_mark()
    tournaments = dict(Entry.objects.filter(pk__in=stale).values_list("pk", "tournament_id"))
    for entry_id in stale:
        _queue(recover_agent_state, tournament_id=tournaments[entry_id], entry_id=entry_id)
    return {"stale": stale}


@catalog_task(
    name="tournaments.recover_agent_state",
    description="Rebuild an entry from the database (portfolio from its trades) and resume it.",
    params=EntryParams,
)
def recover_agent_state(entry_id: int) -> dict[str, Any]:
    Entry.objects.filter(pk=entry_id).update(status=Entry.Status.RECOVERING)
    entry = services.entry_recover(entry=Entry.objects.get(pk=entry_id))
    return {"entry": entry.pk, "cash": str(entry.cash), "positions": entry.positions}


@catalog_task(
    name="tournaments.update_rankings",
    description="Equity at market prices, ranks and snapshots of every live tournament.",
)
def update_rankings() -> dict[str, Any]:
    ranked = {}
    for tournament in Tournament.objects.filter(status=Tournament.Status.LIVE):
        ranked[str(tournament.pk)] = len(services.rankings_update(tournament=tournament))
    return {"ranked": ranked}


@catalog_task(
    name="tournaments.initialize_tournament_agents",
    description="Enter agents into a tournament with its initial cash.",
    params=InitializeParams,
)
def initialize_tournament_agents(tournament_id: int, agents: list[str]) -> dict[str, Any]:
    tournament = Tournament.objects.get(pk=tournament_id)
    found = list(Agent.objects.filter(slug__in=agents))
    missing = sorted(set(agents) - {agent.slug for agent in found})
    created = services.tournament_initialize_agents(tournament=tournament, agents=found)
    return {"tournament": tournament_id, "entered": len(created), "unknown_agents": missing}
