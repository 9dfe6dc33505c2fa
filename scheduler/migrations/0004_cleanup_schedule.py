"""Every deployment cleans up its history: the periodic task "system: clean up results" runs
`scheduler.cleanup_results` daily at 03:30 UTC, which deletes what each table's retention
setting no longer keeps (scheduler/retention.py).

Created once, as `schedule_create` would make it (the crontab row reused, `ScheduleOptions` with
the catalog's overlap policy): staff may change, disable or delete it afterwards, and since a
migration runs once, migrating again does not bring it back. A database where the demo already
made a task of that name keeps its own.
"""

import json

from django.db import migrations
from django.utils import timezone

# Frozen here as they were when this migration was written (scheduler.retention names them).
NAME = "system: clean up results"
TASK = "scheduler.cleanup_results"
QUEUE = "maintenance"
PHRASE = "every day at 3:30"
CRONTAB = {
    "minute": "30",
    "hour": "3",
    "day_of_week": "*",
    "day_of_month": "*",
    "month_of_year": "*",
    "timezone": "UTC",
}
DESCRIPTION = (
    "Deletes what the history keeps no longer: task results, events, audit entries and "
    "ended tournaments' rounds older than their retention settings (*_RETENTION_DAYS)."
)


def create_cleanup_schedule(apps, schema_editor):
    using = schema_editor.connection.alias
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    ScheduleOptions = apps.get_model("scheduler", "ScheduleOptions")
    if PeriodicTask.objects.using(using).filter(name=NAME).exists():
        return
    # Schedule rows have no unique constraint: reuse the oldest match, as the services do.
    crontab = CrontabSchedule.objects.using(using).filter(**CRONTAB).order_by(
        "pk"
    ).first() or CrontabSchedule.objects.using(using).create(**CRONTAB)
    periodic_task = PeriodicTask.objects.using(using).create(
        name=NAME,
        task=TASK,
        crontab=crontab,
        # The catalog's defaults: every table's retention comes from the settings.
        kwargs=json.dumps({"days": None, "batch_size": None}),
        queue=QUEUE,
        description=DESCRIPTION,
        enabled=True,
    )
    ScheduleOptions.objects.using(using).create(
        periodic_task=periodic_task,
        phrase=PHRASE,
        timezone="UTC",
        overlap="skip",  # the catalog entry's policy: a long cleanup is not started twice
        misfire="run_once",
    )
    # Signals of historical models reach no receiver: tell a running beat as the ORM would.
    PeriodicTasks.objects.using(using).update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def delete_cleanup_schedule(apps, schema_editor):
    using = schema_editor.connection.alias
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.using(using).filter(name=NAME, task=TASK).delete()[0]:
        PeriodicTasks.objects.using(using).update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0003_history_scale"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_cleanup_schedule, delete_cleanup_schedule)]
