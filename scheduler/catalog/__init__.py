"""The catalog: the only tasks that can be scheduled or run from the admin, the CLI or the API.

An app adds an entry where it defines the task:

    class CleanupParams(Params):
        days: int = Field(30, ge=1, description="delete results older than this")

    @catalog_task(name="scheduler.cleanup_results", params=CleanupParams,
                  description="Delete old task results and events.")
    def cleanup_results(days: int = 30) -> dict: ...

The decorator registers a Celery task (`shared_task`) and its entry: a stable name, a one-line
description, the queue it is routed to, a pydantic model of its parameters (whose JSON Schema
the admin, the CLI and the API show), and its default overlap policy. The body may be
`async def` (run on the worker's event loop, within the time limits). A name outside the prefixes
config/queues.py routes declares its queue, and its limits unless the queue's fit:

    @catalog_task(name="reports.weekly", description="...", queue="maintenance",
                  soft_time_limit=300, time_limit=330)
    async def weekly_report() -> dict: ...

A Celery task defined elsewhere (`@shared_task`, `@app.task`: a team's existing tasks and the
django-celery-beat rows that run them) is brought into the catalog by its name, in one line:

    catalog_existing("billing.tasks.send_invoices", queue="maintenance", time_limit=600,
                     params=InvoiceParams)

Periodic tasks naming a task that is in no entry are *outside the catalog*: every interface
shows them as such and lets staff view, disable and delete them, never enable, run or edit them
(`outside_catalog_message` says why, and how to bring the task in).

The registry is `entries`; `declaring` holds the decorators and `DeclaredTask`, the base class
of every catalog task: the worker runtime's `CatalogTask`, answering from the registry whether
the task is in the catalog (beat asks before it publishes) and which overlap policy a run follows
(the worker asks as the run starts). So beat and the worker consult the catalog without
importing it: the catalog sits above them.
"""

from __future__ import annotations

from scheduler.catalog.declaring import (
    DeclaredTask,
    catalog_existing,
    catalog_task,
    load_catalog,
    overlap_policy_of,
)
from scheduler.catalog.entries import (
    CATALOG_EXISTING_DOCS,
    MAX_PARAMS_CHARS,
    Catalog,
    CatalogEntry,
    NoParams,
    ParameterError,
    Params,
    UnknownTaskError,
    catalog,
    outside_catalog_message,
    overlap_resolved,
)

__all__ = [
    "CATALOG_EXISTING_DOCS",
    "MAX_PARAMS_CHARS",
    "Catalog",
    "CatalogEntry",
    "DeclaredTask",
    "NoParams",
    "ParameterError",
    "Params",
    "UnknownTaskError",
    "catalog",
    "catalog_existing",
    "catalog_task",
    "load_catalog",
    "outside_catalog_message",
    "overlap_policy_of",
    "overlap_resolved",
]
