"""The tournaments' periodic upkeep (the Agonus seed's table), declared in code: `manage.py
scheduler sync` creates it on every deployment, so a tournament created in the admin goes live,
is ranked and ends on its dates with no other step (scheduler/schedules/declared.py explains
declarations)."""

from __future__ import annotations

from scheduler.schedules import DeclaredSchedule

CHECK_TRANSITIONS_NAME = "tournaments: check transitions"
RECOVER_CRASHED_NAME = "tournaments: recover crashed agents"
UPDATE_RANKINGS_NAME = "tournaments: update rankings"

SCHEDULES = [
    DeclaredSchedule(
        name=CHECK_TRANSITIONS_NAME,
        task="tournaments.check_transitions",
        schedule="every minute",
        description="Start tournaments whose start came; end those whose end came.",
    ),
    DeclaredSchedule(
        name=RECOVER_CRASHED_NAME,
        task="tournaments.recover_crashed_agents",
        schedule="every 2 minutes",
        description="Entries silent for 10 minutes in live tournaments: rebuilt and resumed.",
    ),
    DeclaredSchedule(
        name=UPDATE_RANKINGS_NAME,
        task="tournaments.update_rankings",
        schedule="every 30 seconds",
        description="Equity at market prices, ranks and snapshots of every live tournament.",
    ),
]
