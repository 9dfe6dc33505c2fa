"""System checks: every catalog entry is a registered Celery task with a usable schema."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from config.celery import app
from scheduler.catalog import load_catalog


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
