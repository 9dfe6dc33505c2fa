"""Declaring catalog entries: `@catalog_task` (a new Celery task on the catalog's base class) and
`catalog_existing` (an existing Celery task brought in), and `load_catalog`, which imports every
app's tasks module so that all entries are registered.

A task's body may be `async def`: the worker runs it on its event loop helper, within its time
limits (scheduler/worker/event_loop.py). A task whose name is outside the prefixes
config/queues.py routes ("scheduler.", "agents.", "tournaments.") declares its queue, and may
declare its time limits (default: the queue's): declaring it without one is an error at import,
that is at startup, rather than a task silently on `default` and its 10 s limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from celery import shared_task
from django.apps import apps
from django.utils.module_loading import autodiscover_modules

from config.celery import QUEUE_LIMITS_MARK, app
from config.queues import QUEUES, ROUTED_PREFIXES, routed_queue
from scheduler.catalog.entries import (
    Catalog,
    CatalogEntry,
    NoParams,
    Params,
    _overlap_checked,
    catalog,
    overlap_resolved,
)
from scheduler.core.compiled_reads import FirstValue
from scheduler.models import ScheduleOptions
from scheduler.schedules.policies import OverlapPolicy
from scheduler.worker.task_base import CatalogTask

F = TypeVar("F", bound=Callable[..., Any])


def catalog_existing(
    name: str,
    *,
    description: str = "",
    params: type[Params] = NoParams,
    queue: str | None = None,
    overlap: OverlapPolicy | str = OverlapPolicy.ALLOW,
    time_limit: int | None = None,
    soft_time_limit: int | None = None,
) -> CatalogEntry:
    """Bring a Celery task defined elsewhere into the catalog by its registered name.

    From then on it is scheduled, run and validated like a `@catalog_task`: its `params` model
    checks the keyword arguments, runs go to `queue` (one of config/queues.py; default: the
    queue its name is routed to, and required for a name no route covers) with the time limits
    given (default: the task's own, else the queue's), and it gets the catalog's run guarantees
    (one execution per delivery, the overlap policy) once the Celery app is finalised. Call it
    once at import time, e.g. in a `tasks` module (each app's is imported by `load_catalog`) or
    the app's `ready()`.
    """
    _check_declaration(
        name,
        queue=queue,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        how=f"catalog_existing({name!r}, queue=..., time_limit=..., soft_time_limit=...)",
    )
    entry = CatalogEntry(
        name=name,
        description=description or f"{name} (an existing Celery task)",
        params=params,
        overlap=_overlap_checked(overlap),
        routed_to=queue,
    )
    catalog.register(entry)
    _adopt_when_finalized(name, queue=queue, time_limit=time_limit, soft_time_limit=soft_time_limit)
    return entry


def _check_declaration(
    name: str,
    *,
    queue: str | None,
    time_limit: float | None,
    soft_time_limit: float | None,
    how: str,
) -> None:
    """ValueError naming the task and what to write, for a queue or limits it cannot have."""
    if queue is not None and queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r} for {name!r} (queues: {', '.join(QUEUES)})")
    if queue is None and routed_queue(name) is None:
        raise ValueError(
            f"catalog task {name!r} declares no queue, and its name is outside the routed "
            f"prefixes ({', '.join(repr(prefix) for prefix in ROUTED_PREFIXES)}): it would run "
            f"on 'default' with its {QUEUES['default'].hard_limit} s limit. Declare its queue "
            f"and time limits: {how}, with a queue of config/queues.py ({', '.join(QUEUES)}); "
            "or route the name there (TASK_ROUTES)."
        )
    for label, limit in (("time_limit", time_limit), ("soft_time_limit", soft_time_limit)):
        if limit is not None and not limit > 0:
            raise ValueError(
                f"{label} of {name!r} must be a number of seconds above 0, not {limit!r}"
            )
    if time_limit is not None and soft_time_limit is not None and soft_time_limit >= time_limit:
        raise ValueError(
            f"soft_time_limit of {name!r} ({soft_time_limit:g} s) must be less than its "
            f"time_limit ({time_limit:g} s): the soft limit lets the task clean up before the "
            "hard one kills it"
        )


def _adopt_when_finalized(
    name: str, *, queue: str | None, time_limit: int | None, soft_time_limit: int | None
) -> None:
    def adopt(**_: Any) -> None:
        task = app.tasks.get(name)
        if task is None:
            return  # scheduler.E001 names the entry at startup
        base = DeclaredTask
        if not isinstance(task, base):
            # The task's own class stays (its run, its options); the catalog's base wraps its
            # call: one execution per delivery, and the overlap policy.
            own: type = task.__class__
            task.__class__ = type(own.__name__, (base, own), {})
        if queue is not None:
            adopted: Any = task  # attributes Celery reads that the stubs lack
            adopted.queue = queue
            adopted._exec_options = None  # Celery's cache of the options it sends (the queue)
            if getattr(task, QUEUE_LIMITS_MARK, False):
                # Limits it had from the queue of its name, not its own: the new queue's.
                spec = QUEUES[queue]
                task.time_limit, task.soft_time_limit = spec.hard_limit, spec.soft_limit
        if time_limit is not None:
            task.time_limit = time_limit
        if soft_time_limit is not None:
            task.soft_time_limit = soft_time_limit

    if getattr(app, "finalized", False):  # an attribute the stubs lack
        adopt()
    else:
        app.on_after_finalize.connect(adopt, weak=False)


def overlap_policy_of(periodic_task_name: str, task_name: str) -> str:
    """The policy a run follows: the schedule's own, or its task's declared one as the catalog
    says now (no options row, or `default`): resolved as the run starts."""
    policy = _schedule_overlap(periodic_task_name)
    return str(overlap_resolved(task_name, policy))


# Read as every periodic run starts: compiled once (scheduler/core/compiled_reads.py).
_schedule_overlap = FirstValue(
    ScheduleOptions,
    lambda name: ScheduleOptions.objects.filter(periodic_task__name=name).values_list(
        "overlap", flat=True
    ),
)


class DeclaredTask(CatalogTask):
    """The base class of every catalog task: the worker's run guarantees, answered from the
    catalog (whether the task is in it now, and its declared overlap policy)."""

    @property
    def in_catalog(self) -> bool:  # type: ignore[override]
        return self.name in catalog

    def overlap_policy(self, periodic_task_name: str) -> str:
        return overlap_policy_of(periodic_task_name, self.name)


def catalog_task(
    *,
    name: str,
    description: str,
    params: type[Params] = NoParams,
    overlap: OverlapPolicy | str = OverlapPolicy.ALLOW,
    queue: str | None = None,
    **task_options: Any,
) -> Callable[[F], Any]:
    """Register a Celery task and its catalog entry (module docstring).

    `queue` (one of config/queues.py) is required for a name outside the routed prefixes, and
    wins over the route of one inside them; `time_limit` and `soft_time_limit` (seconds) default
    to the queue's. Other keyword arguments are Celery's task options (`bind`, ...).
    """
    _check_declaration(
        name,
        queue=queue,
        time_limit=task_options.get("time_limit"),
        soft_time_limit=task_options.get("soft_time_limit"),
        how=f"@catalog_task(name={name!r}, queue=..., time_limit=..., soft_time_limit=...)",
    )
    entry = CatalogEntry(
        name=name,
        description=description,
        params=params,
        overlap=_overlap_checked(overlap),
        routed_to=queue,
    )
    if queue is not None:
        task_options["queue"] = queue

    def decorate(function: F) -> Any:
        task_options.setdefault("base", DeclaredTask)
        task = shared_task(name=name, **task_options)(function)
        catalog.register(entry)
        return task

    return decorate


_discovered = False


def load_catalog() -> Catalog:
    """Import every app's tasks module so that all entries are registered."""
    global _discovered

    # Once is enough (the modules stay imported), and lists call this per row: a discovery
    # costs some 0.3 ms.
    if apps.ready and not _discovered:
        autodiscover_modules("tasks")
        _discovered = True
    return catalog
