"""What the scheduler adds to django-celery-beat's tables: per-schedule policies, the audit
trail of every change, and the persisted log of task and schedule events.

django-celery-beat's `PeriodicTask` stays the one source of truth that beat reads and staff
edit in the admin; `ScheduleOptions` only holds what it has no column for.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_celery_beat.models import PeriodicTask

from scheduler.schedules.policies import MisfirePolicy, OverlapPolicy


class Source(models.TextChoices):
    ADMIN = "admin", "Admin"
    CLI = "cli", "Command line"
    API = "api", "REST API"
    DASHBOARD = "dashboard", "Dashboard"
    SYSTEM = "system", "System"
    CODE = "code", "Code (scheduler sync)"


class ScheduleOptions(models.Model):
    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.CASCADE, related_name="options", primary_key=True
    )
    # What the schedule was written as ("every monday at 8am", "0 9 * * 1"), shown back to staff.
    phrase = models.CharField(max_length=200, blank=True)
    # The zone the phrase was read in; crontab rows carry it too, for beat.
    timezone = models.CharField(max_length=63, default="UTC")
    overlap = models.CharField(
        max_length=10, choices=OverlapPolicy.choices, default=OverlapPolicy.DEFAULT
    )
    misfire = models.CharField(
        max_length=10, choices=MisfirePolicy.choices, default=MisfirePolicy.RUN_ONCE
    )

    class Meta:
        verbose_name = "schedule options"
        verbose_name_plural = "schedule options"

    def __str__(self) -> str:
        return f"options of {self.periodic_task_id}"


class DeclaredState(models.Model):
    """A periodic task declared in code (`<app>/upkeep.py`, CELERY_BEAT_SCHEDULE): where, and
    the declaration `scheduler sync` last applied. A field whose row value differs from this
    was changed by staff since (drift), and sync leaves it unless forced."""

    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.CASCADE, related_name="declared", primary_key=True
    )
    origin = models.CharField(max_length=200)
    fields = models.JSONField(default=dict)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "declared schedule"

    def __str__(self) -> str:
        return f"{self.periodic_task_id} declared in {self.origin}"


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"
        DELETED = "deleted", "Deleted"
        RUN_NOW = "run_now", "Run now"

    # The name is kept as text: the trail outlives a deleted periodic task.
    periodic_task_name = models.CharField(max_length=200, db_index=True)
    periodic_task = models.ForeignKey(
        PeriodicTask,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    # {"field": [old, new], ...}; for "created" every field has old None.
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.periodic_task_name} {self.action} via {self.source}"


class TaskEvent(models.Model):
    """One task lifecycle or schedule change event, as the event service recorded it."""

    type = models.CharField(max_length=40, db_index=True)  # "task.started", "schedule.updated"
    task_id = models.CharField(max_length=255, blank=True, db_index=True)
    task_name = models.CharField(max_length=255, blank=True)
    periodic_task_name = models.CharField(max_length=255, blank=True, db_index=True)
    state = models.CharField(max_length=20, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    duration = models.FloatField(null=True, blank=True)  # seconds, on finished runs
    message = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    # The domain object the event belongs to, when there is one ("tournament", "42").
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The chat and tournament pages' backfill: one object's latest events.
            models.Index(
                fields=["object_type", "object_id", "created_at"], name="scheduler_event_object"
            ),
            # The dashboard's backfill filtered on a task name.
            models.Index(fields=["task_name", "created_at"], name="scheduler_event_task_name"),
        ]
        permissions = [
            ("view_dashboard", "Can watch the live dashboard and its event stream"),
            ("run_tasks", "Can run catalog tasks and retry failed runs"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.task_name or self.periodic_task_name}"


class ScheduleState(models.Model):
    """The latest run of a periodic task, kept up to date as its result is stored.

    Pages that list periodic tasks read this row instead of searching a history of millions of
    results. The result backend writes it in the statement (PostgreSQL) or transaction (SQLite)
    that stores the result, and only when that write changed the result row; retention rebuilds
    the rows whose run it deleted (`scheduler.worker.schedule_state`). The latest run is the one
    created last, as `TaskResult` orders them: (date_created, id).

    Keyed by the name, as results name their periodic task: a run keeps its name after the
    periodic task is renamed or deleted.
    """

    periodic_task_name = models.CharField(max_length=255, primary_key=True)
    task_id = models.CharField(max_length=255)
    # The TaskResult row's id, to link to it without a lookup by task id.
    result_id = models.BigIntegerField()
    status = models.CharField(max_length=50)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "schedule state"

    def __str__(self) -> str:
        return f"{self.periodic_task_name}: {self.status}"


class UserPreference(models.Model):
    """What a signed-in person chose for how pages show things to them."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="scheduler_preference",
        primary_key=True,
    )
    # An IANA zone name; blank follows the browser's zone.
    time_zone = models.CharField(max_length=63, blank=True)

    def __str__(self) -> str:
        return f"preferences of {self.user_id}"
