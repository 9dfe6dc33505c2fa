"""Writes of the scheduler app, by entity (schedules, runs, backfills, dead letters, audit,
history, retention, accounts). Every create/update/delete goes through a function here: the
admin, the CLI, the API and the other apps call these, and import them from here
(`from scheduler.services import ...`).
The queueing and retrying that every app's task bodies share is here too (`enqueue.py`).
"""

from __future__ import annotations

from scheduler.core.retries import RetryPolicy
from scheduler.services.accounts import (
    CreatedSuperuser,
    superuser_ensure,
)
from scheduler.services.alerts import (
    AlertNotFound,
    RuleInput,
    alert_target_register,
    channel_delete,
    channel_save,
    incident_acknowledge,
    incident_silence,
    rule_delete,
    rule_save,
)
from scheduler.services.backfills import (
    BACKFILL_MAX_RUNS,
    BackfillNotFound,
    BackfillPlan,
    backfill_as_dict,
    backfill_get,
    backfill_plan,
    backfill_publish,
    backfill_run_id,
    backfill_start,
)
from scheduler.services.dead_letters import (
    DeadLetterBatch,
    dead_letter_discard,
    dead_letter_requeue,
    dead_letters_discard,
    dead_letters_requeue,
)
from scheduler.services.declared import (
    SyncChange,
    SyncReport,
    schedules_reset_to_code,
    schedules_sync,
)
from scheduler.services.enqueue import (
    task_queue,
    task_run_with_retries,
)
from scheduler.services.errors import (
    DeadLetterNotFound,
    DeadLetterResolved,
    ScheduleError,
    ScheduleNotFound,
    TaskNotFound,
    User,
)
from scheduler.services.history import (
    history_clear,
)
from scheduler.services.owners import (
    owner_of_params,
    schedule_owner_register,
)
from scheduler.services.pauses import (
    NOTE_MAX_LENGTH,
    PAUSE_AFTER_MAX,
    schedule_pause,
    schedule_pause_on_failure,
    schedule_resume,
    schedules_pause,
    schedules_resume,
    schedules_resume_due,
)
from scheduler.services.retention import (
    CLEANUP_SCHEDULE_NAME,
    HISTORY_TABLES,
    RetentionPolicy,
    RetentionRow,
    retention_clear,
    retention_overview,
    retention_register,
    retention_run,
)
from scheduler.services.runs import (
    ValidatedTask,
    params_from_json,
    stored_kwargs,
    task_enqueue,
    task_result_retry,
    task_revoke,
    task_run,
    task_validate,
)
from scheduler.services.schedule_policies import (
    JITTER_MAX,
    policies_check,
)
from scheduler.services.schedule_previews import ScheduleDryRun, schedule_dry_run
from scheduler.services.schedules import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    schedule_create,
    schedule_delete,
    schedule_disable,
    schedule_enable,
    schedule_fields_unsaved,
    schedule_get,
    schedule_parse,
    schedule_require_catalog,
    schedule_run_now,
    schedule_save,
    schedule_set_enabled_bulk,
    schedule_update,
)

__all__ = [
    "BACKFILL_MAX_RUNS",
    "CLEANUP_SCHEDULE_NAME",
    "DESCRIPTION_MAX_LENGTH",
    "HISTORY_TABLES",
    "JITTER_MAX",
    "NAME_MAX_LENGTH",
    "NOTE_MAX_LENGTH",
    "PAUSE_AFTER_MAX",
    "AlertNotFound",
    "BackfillNotFound",
    "BackfillPlan",
    "CreatedSuperuser",
    "DeadLetterBatch",
    "DeadLetterNotFound",
    "DeadLetterResolved",
    "RetentionPolicy",
    "RetentionRow",
    "RetryPolicy",
    "RuleInput",
    "ScheduleDryRun",
    "ScheduleError",
    "ScheduleNotFound",
    "SyncChange",
    "SyncReport",
    "TaskNotFound",
    "User",
    "ValidatedTask",
    "alert_target_register",
    "backfill_as_dict",
    "backfill_get",
    "backfill_plan",
    "backfill_publish",
    "backfill_run_id",
    "backfill_start",
    "channel_delete",
    "channel_save",
    "dead_letter_discard",
    "dead_letter_requeue",
    "dead_letters_discard",
    "dead_letters_requeue",
    "history_clear",
    "incident_acknowledge",
    "incident_silence",
    "owner_of_params",
    "params_from_json",
    "policies_check",
    "retention_clear",
    "retention_overview",
    "retention_register",
    "retention_run",
    "rule_delete",
    "rule_save",
    "schedule_create",
    "schedule_delete",
    "schedule_disable",
    "schedule_dry_run",
    "schedule_enable",
    "schedule_fields_unsaved",
    "schedule_get",
    "schedule_owner_register",
    "schedule_parse",
    "schedule_pause",
    "schedule_pause_on_failure",
    "schedule_require_catalog",
    "schedule_resume",
    "schedule_run_now",
    "schedule_save",
    "schedule_set_enabled_bulk",
    "schedule_update",
    "schedules_pause",
    "schedules_reset_to_code",
    "schedules_resume",
    "schedules_resume_due",
    "schedules_sync",
    "stored_kwargs",
    "superuser_ensure",
    "task_enqueue",
    "task_queue",
    "task_result_retry",
    "task_revoke",
    "task_run",
    "task_run_with_retries",
    "task_validate",
]
