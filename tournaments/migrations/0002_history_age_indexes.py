"""Indexes on the age of decisions, trades and equity snapshots, which retention deletes by age
in batches (tournaments/retention.py).

Not atomic: on PostgreSQL each index is built CONCURRENTLY, so that live tournaments keep
writing their rounds while an index builds on millions of rows. SQLite has no such option.
"""

from django.db import migrations, models

INDEXES = [
    ("decision", models.Index(fields=["created_at"], name="tournaments_decision_created")),
    ("equitysnapshot", models.Index(fields=["at"], name="tournaments_snapshot_at")),
    ("trade", models.Index(fields=["executed_at"], name="tournaments_trade_executed")),
]


def _concurrently(schema_editor):
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


def create_indexes(apps, schema_editor):
    for model_name, index in INDEXES:
        model = apps.get_model("tournaments", model_name)
        schema_editor.add_index(model, index, **_concurrently(schema_editor))


def drop_indexes(apps, schema_editor):
    for model_name, index in INDEXES:
        model = apps.get_model("tournaments", model_name)
        schema_editor.remove_index(model, index, **_concurrently(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tournaments", "0001_tournaments_entries_trades"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name=model_name, index=index)
                for model_name, index in INDEXES
            ],
            database_operations=[
                migrations.RunPython(create_indexes, drop_indexes, elidable=False)
            ],
        ),
    ]
