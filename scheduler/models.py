"""What the scheduler adds to django-celery-beat's tables: per-schedule policies, the audit
trail of every change, and the persisted log of task and schedule events.

django-celery-beat's `PeriodicTask` stays the one source of truth that beat reads and staff
edit in the admin; `ScheduleOptions` only holds what it has no column for.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_celery_beat.models import PeriodicTask

from scheduler.schedules.policies import CatchUp, MisfirePolicy, OverlapPolicy


class Source(models.TextChoices):
    ADMIN = "admin", "Admin"
    CLI = "cli", "Command line"
    API = "api", "REST API"
    DASHBOARD = "dashboard", "Dashboard"
    SYSTEM = "system", "System"
    CODE = "code", "Code (scheduler sync)"
    PYTHON = "python", "Python API (scheduler.client)"


class ScheduleOptions(models.Model):
    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.CASCADE, related_name="options", primary_key=True
    )
    # What the schedule was written as ("every monday at 8am", "0 9 * * 1"), shown back to staff.
    phrase = models.CharField(max_length=200, blank=True)
    # The zone the phrase was read in; crontab rows carry it too, for beat.
    timezone = models.CharField(max_length=63, default="UTC")
    overlap = models.CharField(
        max_length=20, choices=OverlapPolicy.choices, default=OverlapPolicy.DEFAULT
    )
    misfire = models.CharField(
        max_length=10, choices=MisfirePolicy.choices, default=MisfirePolicy.RUN_ONCE
    )
    # Runs missed while beat was down: which are made, and how late one may be (seconds; None:
    # however late). A run later than beat's grace (a minute) counts as missed.
    catchup = models.CharField(max_length=10, choices=CatchUp.choices, default=CatchUp.LATEST)
    catchup_window = models.PositiveIntegerField(null=True, blank=True, help_text="seconds")
    # Each run is published up to this many seconds after its due time, the same delay for a
    # given run whichever beat publishes it.
    jitter = models.PositiveIntegerField(default=0, help_text="seconds")
    # The runs beat may still make (None: no limit); at 0 the schedule is disabled.
    max_runs = models.PositiveIntegerField(null=True, blank=True)
    remaining_runs = models.PositiveIntegerField(null=True, blank=True)
    # A pause says who made it, why, and when it ends by itself (None: until resumed).
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who paused it when no Django user did (the OS user of a command-line run).
    paused_by_name = models.CharField(max_length=150, blank=True)
    pause_note = models.TextField(blank=True)
    paused_until = models.DateTimeField(null=True, blank=True, db_index=True)
    # Paused by itself after this many failed runs in a row (None: never).
    pause_after_failures = models.PositiveSmallIntegerField(null=True, blank=True)
    failure_streak = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "schedule options"
        verbose_name_plural = "schedule options"

    def __str__(self) -> str:
        return f"options of {self.periodic_task_id}"


class Backfill(models.Model):
    """A request to make a schedule's runs of a past (or future) range now, and its progress."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    periodic_task = models.ForeignKey(
        PeriodicTask, null=True, on_delete=models.SET_NULL, related_name="backfills"
    )
    periodic_task_name = models.CharField(max_length=255, db_index=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    overlap = models.CharField(max_length=20, choices=OverlapPolicy.choices)
    total = models.PositiveIntegerField(default=0)
    published = models.PositiveIntegerField(default=0)
    # Runs this range had already made (a repeated backfill): not published again.
    existing = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backfill of {self.periodic_task_name} ({self.start} to {self.end})"


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


class DeclaredAlert(models.Model):
    """An alert channel or rule declared in code (`<app>/upkeep.py`): where, and the declaration
    `scheduler sync` last applied, as DeclaredState keeps it for a schedule. Kept by name, not
    by row: one staff deleted is created again by the next sync, as a schedule is."""

    class Entity(models.TextChoices):
        CHANNEL = "channel", "Alert channel"
        RULE = "rule", "Alert rule"

    entity = models.CharField(max_length=10, choices=Entity.choices)
    name = models.CharField(max_length=100)
    origin = models.CharField(max_length=200)
    fields = models.JSONField(default=dict)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "declared alert"
        constraints = [
            models.UniqueConstraint(fields=["entity", "name"], name="scheduler_declared_alert")
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.name} declared in {self.origin}"


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"
        DELETED = "deleted", "Deleted"
        RUN_NOW = "run_now", "Run now"
        # Of a dead letter (its run's periodic task or task name is the entry's name).
        REQUEUED = "requeued", "Requeued"
        DISCARDED = "discarded", "Discarded"
        # Of an alert rule, a channel or an incident.
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        SILENCED = "silenced", "Silenced"
        TESTED = "tested", "Test notification sent"
        # Of a schedule's state (a pause, a backfill) and of runs (the entry's name is the
        # run's periodic task, or its task name for an ad-hoc run).
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        BACKFILLED = "backfilled", "Backfilled"
        TASK_RUN = "task_run", "Ran a catalog task"
        RETRIED = "retried", "Retried"
        REVOKED = "revoked", "Revoked"
        TERMINATED = "terminated", "Terminated"
        # Of a queue (the entry's name is "queue:NAME") or a worker ("worker:HOSTNAME").
        QUEUE_PAUSED = "queue_paused", "Queue paused"
        QUEUE_RESUMED = "queue_resumed", "Queue resumed"
        QUEUE_PURGED = "queue_purged", "Queue purged"
        POOL_GROWN = "pool_grown", "Worker pool grown"
        POOL_SHRUNK = "pool_shrunk", "Worker pool shrunk"
        AUTOSCALED = "autoscaled", "Worker autoscale set"
        SHUT_DOWN = "shut_down", "Worker shut down"

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
    # Who acted when no Django user did: the OS user of a command-line run ("alice@host").
    actor_name = models.CharField(max_length=150, blank=True)
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
            ("control_workers", "Can pause, resume and purge queues, and resize and stop workers"),
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


# --- alerts ------------------------------------------------------------------------------------


class AlertChannel(models.Model):
    """Where notifications go: a kind from the channel registry (SCHEDULER_ALERT_CHANNEL_KINDS:
    email, webhook, slack, signal, or a deployment's own) and its settings. Secrets are never
    stored here: a webhook's signing key is read from the environment variable its settings
    name."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=40)
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class AlertRule(models.Model):
    """When to open an incident: a target (what runs it watches) and a trigger (what is wrong)."""

    class Target(models.TextChoices):
        ALL = "all", "Everything"
        SCHEDULE = "schedule", "Schedule"
        TASK = "task", "Catalog task"
        AGENT = "agent", "Agent"
        TOURNAMENT = "tournament", "Tournament"
        QUEUE = "queue", "Queue"

    class Trigger(models.TextChoices):
        FAILED = "failed", "A run failed (after its last retry)"
        CONSECUTIVE_FAILURES = "consecutive_failures", "N consecutive failures"
        MISSED = "missed", "A run was missed (no result after beat published it)"
        LONG_RUN = "long_run", "A run took longer than D"
        NO_SUCCESS = "no_success", "No success for a period"
        BEAT_NO_LEADER = "beat_no_leader", "Beat without a leader for T"
        NO_WORKER = "no_worker", "No worker on a queue for T"
        QUEUE_DEPTH = "queue_depth", "A queue deeper than N for T"

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    target_type = models.CharField(max_length=20, choices=Target.choices, default=Target.ALL)
    # As staff wrote it (a schedule's name, an agent's slug); blank for "all".
    target = models.CharField(max_length=255, blank=True)
    # What runs carry (an agent's primary key as their object header names it); set on save.
    target_key = models.CharField(max_length=255, blank=True, editable=False)
    trigger = models.CharField(max_length=30, choices=Trigger.choices)
    # N: failures in a row, or a queue's depth.
    threshold = models.PositiveIntegerField(null=True, blank=True)
    # D or T in seconds: a run's longest duration, the period without success, how long beat
    # may go without a leader, a queue without a worker or too deep.
    duration = models.PositiveIntegerField(null=True, blank=True, help_text="seconds")
    channels = models.ManyToManyField(AlertChannel, blank=True, related_name="rules")
    # An open incident is notified again after this long (0: never again until it recovers).
    repeat_interval = models.PositiveIntegerField(default=4 * 3600, help_text="seconds")
    # Notifications wait out this daily window (in quiet_timezone); incidents still open.
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    quiet_timezone = models.CharField(max_length=63, default="UTC")
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_alerts", "Can acknowledge and silence incidents")]

    def __str__(self) -> str:
        return self.name


class Incident(models.Model):
    """One problem, from the first match of a rule to its recovery: one notification when it
    opens, one when it recovers, and repeats only after the rule's repeat interval."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    # What is wrong, in the rule's terms: "schedule:nightly report", "queue:default", "beat".
    subject = models.CharField(max_length=255)
    title = models.CharField(max_length=500)
    opened_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_match_at = models.DateTimeField()
    match_count = models.PositiveIntegerField(default=1)
    # The last notification of this incident ("down" or a repeat); None: owed one.
    notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledge_note = models.TextField(blank=True)
    silenced_until = models.DateTimeField(null=True, blank=True)
    # The last match's facts: task id, error, duration, depth...
    details = models.JSONField(default=dict, blank=True)
    # The domain object it belongs to, so its page hears of it ("agent", "3").
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(resolved_at__isnull=True),
                name="scheduler_incident_one_open",
            )
        ]
        indexes = [
            models.Index(
                fields=["opened_at"],
                condition=models.Q(resolved_at__isnull=True),
                name="scheduler_incident_open",
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class NotificationDelivery(models.Model):
    """Every notification sent, or tried: the log healthchecks calls "notifications"."""

    class Kind(models.TextChoices):
        DOWN = "down", "Down"
        REPEAT = "repeat", "Still down"
        RECOVERED = "recovered", "Recovered"
        TEST = "test", "Test"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    subject = models.CharField(max_length=500)
    message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "notification deliveries"

    def __str__(self) -> str:
        return f"{self.kind} to {self.channel_id}: {self.status}"


class DeadLetter(models.Model):
    """A run that failed its last retry, kept until staff requeue or discard it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REQUEUED = "requeued", "Requeued"
        DISCARDED = "discarded", "Discarded"

    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255)
    periodic_task_name = models.CharField(max_length=255, blank=True)
    # As the run was called (shown masked); requeue validates them again through the catalog.
    kwargs = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    queue = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    failed_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requeued_as = models.CharField(max_length=255, blank=True)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-failed_at", "-id"]
        indexes = [
            models.Index(fields=["status", "failed_at"], name="scheduler_deadletter_status"),
            # Retention: resolved letters go by the time they were resolved (open ones have none).
            models.Index(fields=["resolved_at"], name="scheduler_deadletter_resolved"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id}"


class QueuePause(models.Model):
    """A queue no worker consumes from until it is resumed: every worker that starts (or
    restarts) reads these rows and leaves their queues alone."""

    queue = models.CharField(max_length=200, unique=True)
    paused_at = models.DateTimeField(auto_now_add=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Who paused it when no Django user did (the OS user of a command-line run).
    paused_by_name = models.CharField(max_length=150, blank=True)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["queue"]

    def __str__(self) -> str:
        return f"queue {self.queue} paused"
