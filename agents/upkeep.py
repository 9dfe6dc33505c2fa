"""The agents' periodic upkeep, declared in code: `manage.py scheduler sync` creates it on every
deployment (scheduler/schedules/declared.py explains declarations)."""

from __future__ import annotations

from scheduler.schedules import DeclaredSchedule

SUMMARIZE_NAME = "agents: summarize long sessions"
FOLLOWUPS_NAME = "agents: follow up silent sessions"
STALE_SESSIONS_NAME = "agents: close stale sessions"
MEMORY_BACKUP_NAME = "agents: back up memory"
MEMORY_CLEANUP_NAME = "agents: clean up memory"

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
    DeclaredSchedule(
        name=MEMORY_BACKUP_NAME,
        task="agents.backup_memory",
        schedule="every 6 hours",
        description="Every agent's state and session summaries to BACKUP_DIR/agents/.",
    ),
    DeclaredSchedule(
        name=MEMORY_CLEANUP_NAME,
        task="agents.cleanup_memory",
        schedule="every 6 hours",
        description="The agents' state keys past their time to live dropped.",
    ),
]
