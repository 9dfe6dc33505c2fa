"""A demo tournament that is live as soon as the stack runs (the periodic upkeep every
installation needs is declared in tournaments/upkeep.py; `scheduler sync` creates it).

`seed_demo_tournament` enters six rules traders, one per strategy, into a tournament
live for the next DEMO_HOURS hours with a decision every DEMO_INTERVAL seconds, so that the
leaderboard moves while a newcomer watches. Both create only what is missing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from agents.services import agent_create
from tournaments.models import Tournament
from tournaments.services import tournament_create, tournament_initialize_agents, tournament_start

DEMO_TOURNAMENT_NAME = "Demo cup"
DEMO_HOURS = 6
DEMO_INTERVAL = 30  # seconds between decisions: the leaderboard moves while you watch
DEMO_SYMBOLS = ["ACME", "BOLT", "CRUX", "DYNO", "EMBR"]
DEMO_CASH = Decimal("10000")
DEMO_SEED = 2026

# slug -> (name, entry strategy, rules brain config)
DEMO_TRADERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "demo-trader-holder": ("Holly Holder", "buy_and_hold", {"strategy": "hold"}),
    "demo-trader-momentum": ("Max Momentum", "momentum", {"strategy": "momentum"}),
    "demo-trader-reversion": ("Remy Reversion", "mean_reversion", {"strategy": "mean_reversion"}),
    "demo-trader-random": ("Rita Random", "random", {}),
    # The `brain` strategy asks the agent's brain: here the offline rules brain, which trades
    # on any move over the history (no threshold), with a larger share of its cash.
    "demo-trader-brain": (
        "Bea Brain",
        "brain",
        {"strategy": "momentum", "trade_fraction": 0.5},
    ),
    "demo-trader-contrarian": (
        "Cory Contrarian",
        "brain",
        {"strategy": "mean_reversion", "trade_fraction": 0.3},
    ),
}


def demo_tournament_current(*, now: datetime | None = None) -> Tournament | None:
    """The demo tournament that is scheduled or live and not past its end, if any."""
    now = now or timezone.now()
    return (
        Tournament.objects.filter(
            name__startswith=DEMO_TOURNAMENT_NAME,
            status__in=[Tournament.Status.SCHEDULED, Tournament.Status.LIVE],
            ends_at__gt=now,
        )
        .order_by("-starts_at", "-id")
        .first()
    )


@transaction.atomic
def seed_demo_tournament(*, now: datetime | None = None) -> list[str]:
    """The demo traders that are missing, and a live demo tournament when none is running.

    A demo tournament that ran its hours is left as it is (finished by check_transitions) and
    the next seed starts a new one ("Demo cup 2", ...), so `make run` on another day shows a
    live leaderboard again; while one runs, nothing changes.
    """
    now = now or timezone.now()
    created: list[str] = []
    traders: list[Agent] = []
    existing = {agent.slug: agent for agent in Agent.objects.filter(slug__in=DEMO_TRADERS)}
    for slug, (name, _, config) in DEMO_TRADERS.items():
        agent = existing.get(slug)
        if agent is None:
            agent = agent_create(name=name, slug=slug, kind=Agent.Kind.TRADER, brain_config=config)
            created.append(f"agent '{slug}'")
        traders.append(agent)
    if demo_tournament_current(now=now) is not None:
        return created
    tournament = tournament_create(
        name=_free_demo_name(),
        starts_at=now,
        ends_at=now + timedelta(hours=DEMO_HOURS),
        symbols=DEMO_SYMBOLS,
        initial_cash=DEMO_CASH,
        decision_interval=DEMO_INTERVAL,
        market_seed=DEMO_SEED,
    )
    strategies = {agent.pk: DEMO_TRADERS[agent.slug][1] for agent in traders}
    entries = tournament_initialize_agents(
        tournament=tournament, agents=traders, strategies=strategies
    )
    tournament = tournament_start(tournament=tournament)
    created.append(
        f"tournament '{tournament.name}' with {len(entries)} traders, live until "
        f"{timezone.localtime(tournament.ends_at):%Y-%m-%d %H:%M %Z} "
        f"(/tournaments/{tournament.pk}/)"
    )
    return created


def _free_demo_name() -> str:
    taken = set(
        Tournament.objects.filter(name__startswith=DEMO_TOURNAMENT_NAME).values_list(
            "name", flat=True
        )
    )
    if DEMO_TOURNAMENT_NAME not in taken:
        return DEMO_TOURNAMENT_NAME
    number = 2
    while f"{DEMO_TOURNAMENT_NAME} {number}" in taken:
        number += 1
    return f"{DEMO_TOURNAMENT_NAME} {number}"
