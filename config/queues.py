"""Named queues, task routes and per-queue time limits: a pure table with no Celery app.

Settings read it (for the broker's visibility timeout) and so does `config/celery.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True)
class QueueSpec:
    name: str
    hard_limit: int  # seconds; the worker kills the task's process past this
    soft_limit: int  # seconds; SoftTimeLimitExceeded is raised in the task first, to clean up
    purpose: str


QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec("default", 10, 8, "short system tasks (ping, health checks)"),
        QueueSpec("agents", 60, 55, "agent decisions and scheduled agent work"),
        QueueSpec("trading", 30, 25, "tournament rounds, rankings, transitions"),
        QueueSpec("recovery", 120, 110, "rebuilding crashed tournament entries"),
        QueueSpec("llm", 60, 55, "conversation replies through a brain"),
        QueueSpec("summarization", 120, 110, "summaries of long sessions"),
        QueueSpec("followups", 60, 55, "follow-up messages after silence"),
        QueueSpec("webhooks", 30, 25, "deliveries to external webhooks"),
        QueueSpec("maintenance", 900, 870, "backups, cleanups, allow-listed commands"),
    )
}

# Task name patterns -> queue, first match wins. Tasks not named here run on "default".
TASK_ROUTES: dict[str, str] = {
    "scheduler.backup_database": "maintenance",
    "scheduler.cleanup_results": "maintenance",
    "scheduler.execute_command": "maintenance",
    "scheduler.cleanup_logs": "maintenance",
    # Up to 10,000 messages with their progress: longer than the default queue's 10 s allows.
    "scheduler.backfill": "maintenance",
    "scheduler.send_notification": "webhooks",
    "scheduler.*": "default",
    "agents.process_message": "llm",
    "agents.summarize_session": "summarization",
    "agents.send_followup": "followups",
    "agents.send_response": "webhooks",
    "agents.close_stale_sessions": "followups",
    "agents.backup_memory": "maintenance",
    "agents.cleanup_memory": "maintenance",
    "agents.*": "agents",
    "tournaments.run_agent_decision": "agents",
    "tournaments.recover_*": "recovery",
    "tournaments.*": "trading",
}

# Longer than the longest task, so Redis never hands a running task to a second worker.
VISIBILITY_TIMEOUT = max(3600, 2 * max(spec.hard_limit for spec in QUEUES.values()))


def queue_for(task_name: str) -> str:
    for pattern, queue in TASK_ROUTES.items():
        if fnmatchcase(task_name, pattern):
            return queue
    return "default"


def route_task(
    name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any
) -> dict[str, str]:
    return {"queue": queue_for(name)}
