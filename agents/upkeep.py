"""The agents' periodic upkeep, declared in code: `manage.py scheduler sync` creates it on every
deployment (scheduler/schedules/declared.py explains declarations)."""

from __future__ import annotations

from scheduler.schedules import DeclaredSchedule

SUMMARIZE_NAME = "agents: summarize long sessions"
FOLLOWUPS_NAME = "agents: follow up silent sessions"
STALE_SESSIONS_NAME = "agents: close stale sessions"

SCHEDULES = [
    DeclaredSchedule(
        name=SUMMARIZE_NAME,
        task="agents.check_sessions_for_summarization",
        schedule="every hour",
        description="Summarise sessions that grew past AGENT_SUMMARY_AFTER messages.",
    ),
    DeclaredSchedule(
        name=FOLLOWUPS_NAME,
        task="agents.check_sessions_for_followups",
        schedule="every 15 minutes",
        description="Follow up once on sessions silent past AGENT_FOLLOWUP_AFTER.",
    ),
    DeclaredSchedule(
        name=STALE_SESSIONS_NAME,
        task="agents.close_stale_sessions",
        schedule="every hour",
        description="Close the sessions silent for SESSION_IDLE_CLOSE seconds.",
    ),
]
