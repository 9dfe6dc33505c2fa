"""Named queues, task routes and per-queue time limits: a pure table with no Celery app.

Settings read it (for the broker's visibility timeout) and so does `config/celery.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
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
        QueueSpec("crm", 30, 25, "orders agents produced, posted to the CRM"),
        QueueSpec("maintenance", 900, 870, "backups, cleanups, allow-listed commands"),
    )
}

# Task name patterns -> queue, first match wins. A catalog task named by none of them declares its
# queue (`@catalog_task(queue=...)`, `catalog_existing(..., queue=...)`); any other task named by
# none runs on "default".
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
    "agents.create_crm_order": "crm",
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


@lru_cache(maxsize=1024)
def routed_queue(task_name: str) -> str | None:
    """The queue TASK_ROUTES sends `task_name` to; None when no pattern names it.

    Asked several times per run (its limits, its watchdog) of a fixed table: kept per name."""
    for pattern, queue in TASK_ROUTES.items():
        if fnmatchcase(task_name, pattern):
            return queue
    return None


def queue_for(task_name: str) -> str:
    return routed_queue(task_name) or "default"


def queue_of(task: Any) -> str:
    """The queue of a task object: the one it declares (one of QUEUES), else its name's."""
    declared = getattr(task, "queue", None)
    return declared if declared in QUEUES else queue_for(task.name)


# The prefixes TASK_ROUTES covers by a wildcard ("agents.", ...): names a catalog task may take
# without declaring its queue.
ROUTED_PREFIXES: tuple[str, ...] = tuple(
    pattern.removesuffix("*") for pattern in TASK_ROUTES if pattern.endswith(".*")
)


def route_task(
    name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any
) -> dict[str, str]:
    return {"queue": queue_of(task) if task is not None else queue_for(name)}
