"""The beat process: our scheduler for `celery beat` (a heap of due entries, change notices
instead of reloads, leadership among several beats, the missed-run watchdog), and the change
notices that every write sends it.

`scheduler.beat:DatabaseScheduler` is the documented CELERY_BEAT_SCHEDULER (settings, deploy
files, README, deployments' .env) and `scheduler.beat.run_task_id` is named in docs: both stay
importable from here. Modules inside `scheduler/` import by full path; other apps import from
here.
"""

from __future__ import annotations

from scheduler.beat.changes import CHANGES_CHANNEL, Changes, notify_beat
from scheduler.beat.scheduler import DatabaseScheduler, run_task_id

__all__ = ["CHANGES_CHANNEL", "Changes", "DatabaseScheduler", "notify_beat", "run_task_id"]
