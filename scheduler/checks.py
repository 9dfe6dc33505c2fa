"""System checks: every catalog entry is a registered Celery task with a usable schema, every
schedule declared in code can be read and runs a catalog task, and every alert channel and rule
declared in code can be read."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from config.celery import app
from scheduler.catalog import CATALOG_EXISTING_DOCS, load_catalog
from scheduler.schedules.declared import DeclarationError, declared_schedules
from scheduler.schedules.declared_alerts import declared_alerts
from scheduler.services.declared_alerts import alert_declarations_check


@register()
def check_catalog(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for entry in load_catalog():
        if entry.name not in app.tasks:
            errors.append(
                Error(
                    f"catalog entry {entry.name!r} is not a registered Celery task",
                    hint="Register it with @catalog_task next to the task's function.",
                    id="scheduler.E001",
                )
            )
        try:
            entry.schema()
        except Exception as exc:
            errors.append(
                Error(
                    f"the parameters of catalog entry {entry.name!r} have no JSON Schema: {exc}",
                    hint="Use JSON-compatible types in its Params model.",
                    id="scheduler.E002",
                )
            )
    return errors


@register()
def check_declared_schedules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Schedules declared in code (each app's upkeep.py, CELERY_BEAT_SCHEDULE) can be read and
    run catalog tasks: a wrong one stops the process at start, it is not silently ignored."""
    try:
        declared = declared_schedules()
    except DeclarationError as exc:
        return [Error(str(exc), id="scheduler.E003")]
    catalog = load_catalog()
    return [
        Error(
            f"{item.origin}: {item.name!r}: task: {item.task!r} is not in the catalog",
            hint=f"Declare it with @catalog_task or bring it in with catalog_existing "
            f"({CATALOG_EXISTING_DOCS}).",
            id="scheduler.E004",
        )
        for item in declared
        if item.task not in catalog
    ]


@register()
def check_declared_alerts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Alert channels and rules declared in code (each app's upkeep.py CHANNELS, ALERT_RULES)
    can be read: known kinds and triggers, settings their kind takes, no secret in a config.
    Checks may run before the database exists: a rule's target and channels are looked up by
    `scheduler sync`, which reports one that is not there."""
    try:
        declared = declared_alerts()
    except DeclarationError as exc:
        return [Error(str(exc), id="scheduler.E005")]
    return [
        Error(
            str(problem),
            hint="See 'Schedules as code' in the README for the fields of DeclaredChannel and "
            "DeclaredRule.",
            id="scheduler.E005",
        )
        for problem in alert_declarations_check(declared)
    ]
