"""Production history: the latest run of each periodic task kept on a row of its own, and
indexes that match what the daily pages ask of millions of results and events.

Not atomic: on PostgreSQL the indexes are built CONCURRENTLY, so that a deployment keeps writing
results while they build (scheduler/indexes.py).
"""

from django.db import migrations, models

from scheduler.indexes import TableIndex

RESULTS = "django_celery_results_taskresult"
EVENTS = "scheduler_taskevent"

RESULT_INDEXES = [
    # A periodic task's history, newest first (the admin's run history, the dashboard's
    # recent runs). Its latest run by creation (the state's rebuild, rare) reads the stock
    # index on the name: one more index on every result written would cost more.
    TableIndex(
        "scheduler_result_periodic_done",
        RESULTS,
        ["periodic_task_name", "date_done"],
        prefix_columns=["periodic_task_name"],
    ),
    # Results of one status or one task, newest first (failures panel, filters, the API); the
    # names are also searched by their start (the results admin).
    TableIndex("scheduler_result_status_done", RESULTS, ["status", "date_done"]),
    TableIndex(
        "scheduler_result_task_done",
        RESULTS,
        ["task_name", "date_done"],
        prefix_columns=["task_name"],
    ),
]
EVENT_INDEXES = [
    TableIndex("scheduler_event_object", EVENTS, ["object_type", "object_id", "created_at"]),
    TableIndex("scheduler_event_task_name", EVENTS, ["task_name", "created_at"]),
]


def create_indexes(indexes):
    def forwards(apps, schema_editor):
        for index in indexes:
            index.create(schema_editor)

    def backwards(apps, schema_editor):
        for index in indexes:
            index.drop(schema_editor)

    return migrations.RunPython(forwards, backwards, elidable=False)


def states_from_history(apps, schema_editor):
    """The latest run of every periodic task already in the history."""
    TaskResult = apps.get_model("django_celery_results", "TaskResult")
    ScheduleState = apps.get_model("scheduler", "ScheduleState")
    using = schema_editor.connection.alias
    results = TaskResult.objects.using(using)
    names = (
        results.exclude(periodic_task_name__isnull=True)
        .exclude(periodic_task_name="")
        .values_list("periodic_task_name", flat=True)
        .distinct()
        .order_by()
    )
    for name in list(names):
        latest = (
            results.filter(periodic_task_name=name).order_by("-date_created", "-id").first()
        )
        ScheduleState.objects.using(using).update_or_create(
            periodic_task_name=name,
            defaults={
                "task_id": latest.task_id,
                "result_id": latest.id,
                "status": latest.status,
                "created_at": latest.date_created,
                "started_at": latest.date_started,
                "done_at": latest.date_done,
            },
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("scheduler", "0002_live_events"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    operations = [
        migrations.CreateModel(
            name="ScheduleState",
            fields=[
                (
                    "periodic_task_name",
                    models.CharField(max_length=255, primary_key=True, serialize=False),
                ),
                ("task_id", models.CharField(max_length=255)),
                ("result_id", models.BigIntegerField()),
                ("status", models.CharField(max_length=50)),
                ("created_at", models.DateTimeField()),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("done_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"verbose_name": "schedule state"},
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="taskevent",
                    index=models.Index(
                        fields=["object_type", "object_id", "created_at"],
                        name="scheduler_event_object",
                    ),
                ),
                migrations.AddIndex(
                    model_name="taskevent",
                    index=models.Index(
                        fields=["task_name", "created_at"], name="scheduler_event_task_name"
                    ),
                ),
            ],
            database_operations=[create_indexes(EVENT_INDEXES)],
        ),
        create_indexes(RESULT_INDEXES),
        migrations.RunPython(states_from_history, migrations.RunPython.noop),
    ]
