"""The catalog: the only tasks that can be scheduled or run from the admin, the CLI or the API.

An app adds an entry where it defines the task:

    class CleanupParams(Params):
        days: int = Field(30, ge=1, description="delete results older than this")

    @catalog_task(name="scheduler.cleanup_results", params=CleanupParams,
                  description="Delete old task results and events.")
    def cleanup_results(days: int = 30) -> dict: ...

The decorator registers a Celery task (`shared_task`) and its entry: a stable name, a one-line
description, the queue it is routed to, a pydantic model of its parameters (whose JSON Schema
the admin, the CLI and the API show), and its default overlap policy.

A Celery task defined elsewhere (`@shared_task`, `@app.task`: a team's existing tasks and the
django-celery-beat rows that run them) is brought into the catalog by its name, in one line:

    catalog_existing("billing.tasks.send_invoices", queue="maintenance", time_limit=600,
                     params=InvoiceParams)

Periodic tasks naming a task that is in no entry are *outside the catalog*: every interface
shows them as such and lets staff view, disable and delete them, never enable, run or edit them
(`outside_catalog_message` says why, and how to bring the task in).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import shared_task
from pydantic import BaseModel, ConfigDict, ValidationError

from config.queues import queue_for
from scheduler.schedules.policies import OverlapPolicy

# Parameters ride in every message of the task and are stored with every schedule of it: a paste
# of a megabyte is refused, not carried. The largest a catalog task declares (a notification's
# 20,000-character message and 100 recipients) is well below this.
MAX_PARAMS_CHARS = 65_536
# Whole numbers end up in database columns (ids, counts): beyond 64 bits no column holds them.
_INT64 = range(-(2**63), 2**63)


class Params(BaseModel):
    """Base of every parameter model: unknown parameters are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class NoParams(Params):
    pass


class UnknownTaskError(LookupError):
    def __init__(self, name: str, available: list[str]):
        self.name = name
        super().__init__(
            f"unknown task {name!r}: not in the catalog (available: {', '.join(available)})"
        )


class ParameterError(ValueError):
    """Parameters that do not match the task's declared parameters.

    `errors` maps a dotted parameter path ('days', 'recipients.0') to its messages.
    """

    def __init__(self, task: str, errors: dict[str, list[str]]):
        self.task = task
        self.errors = errors
        details = "; ".join(f"{path}: {' '.join(msgs)}" for path, msgs in errors.items())
        super().__init__(f"invalid parameters for {task}: {details}")


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    params: type[Params] = NoParams
    overlap: OverlapPolicy = OverlapPolicy.ALLOW
    # A queue other than the one config/queues.py routes the name to (`catalog_existing`).
    routed_to: str | None = None

    @property
    def queue(self) -> str:
        return self.routed_to or queue_for(self.name)

    def schema(self) -> dict[str, Any]:
        return self.params.model_json_schema()

    def validate(self, raw: Any) -> dict[str, Any]:
        """Checked, defaulted parameters as plain JSON values; ParameterError if they are wrong."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ParameterError(
                self.name, {"params": [f"must be a JSON object, not {type(raw).__name__}"]}
            )
        _check_size(self.name, raw)
        try:
            model = self.params.model_validate(raw)
        except ValidationError as exc:
            errors: dict[str, list[str]] = {}
            for error in exc.errors():
                path = ".".join(str(part) for part in error["loc"]) or "params"
                message = error["msg"]
                if error["type"] == "extra_forbidden":
                    message = "is not a parameter of this task"
                errors.setdefault(path, []).append(message)
            raise ParameterError(self.name, errors) from exc
        # Before the JSON dump, which would write a NaN as null.
        errors = {path: [message] for path, message in _unstorable_numbers(model.model_dump())}
        if errors:
            raise ParameterError(self.name, errors)
        return model.model_dump(mode="json")


def _check_size(task: str, raw: dict[str, Any]) -> None:
    try:
        size = len(json.dumps(raw, ensure_ascii=False, default=str))
    # Circular, keyed by what JSON has no keys for, or nested deeper than JSON can be written.
    except (ValueError, TypeError, RecursionError):
        raise ParameterError(task, {"params": ["cannot be written as JSON"]}) from None
    if size > MAX_PARAMS_CHARS:
        raise ParameterError(
            task,
            {"params": [f"are {size} characters as JSON: at most {MAX_PARAMS_CHARS} are allowed"]},
        )


def _unstorable_numbers(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Numbers JSON cannot carry (NaN, infinities) or no database column holds (beyond 64 bits)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _unstorable_numbers(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_numbers(item, f"{path}.{index}" if path else str(index))
    elif isinstance(value, float) and not math.isfinite(value):
        yield path or "params", "must be a finite number"
    elif isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        yield path or "params", "is too large: whole numbers must fit in 64 bits"


class Catalog:
    def __init__(self) -> None:
        self._entries: dict[str, CatalogEntry] = {}

    def register(self, entry: CatalogEntry) -> None:
        existing = self._entries.get(entry.name)
        if existing is not None and existing != entry:
            raise ValueError(f"catalog entry {entry.name!r} is registered twice")
        self._entries[entry.name] = entry

    def get(self, name: str) -> CatalogEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownTaskError(name, self.names()) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(sorted(self._entries.values(), key=lambda entry: entry.name))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def unregister(self, name: str) -> None:
        """Forget an entry (tests that bring a task in for a while)."""
        self._entries.pop(name, None)


catalog = Catalog()

F = TypeVar("F", bound=Callable[..., Any])


def overlap_resolved(task_name: str, policy: str | None) -> OverlapPolicy:
    """The overlap policy a schedule's run follows: its own, or (None: no options row;
    `default`) its task's declared policy as the catalog says now; `allow` outside it."""
    if policy is not None and policy != OverlapPolicy.DEFAULT:
        return OverlapPolicy(policy)
    if task_name in catalog:
        return catalog.get(task_name).overlap
    return OverlapPolicy.ALLOW


CATALOG_EXISTING_DOCS = "README.md, 'Bringing existing Celery tasks into the catalog'"


def outside_catalog_message(task_name: str, periodic_task_name: str, action: str) -> str:
    """Why a periodic task outside the catalog cannot be `action`ed (enabled, run, edited)."""
    return (
        f"{periodic_task_name!r} runs {task_name!r}, which is outside the catalog: it can be "
        f"disabled or deleted, not {action}. To keep it, bring the task into the catalog with "
        f"catalog_existing({task_name!r}, queue=..., params=...) ({CATALOG_EXISTING_DOCS})."
    )


def _overlap_checked(overlap: OverlapPolicy | str) -> OverlapPolicy:
    policy = OverlapPolicy(overlap)
    if policy == OverlapPolicy.DEFAULT:
        raise ValueError("a catalog entry declares its overlap policy: allow or skip")
    return policy


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
    queue its name is routed to) with the time limits given (default: the task's own, else the
    queue's), and it gets the catalog's run guarantees (one execution per delivery, the overlap
    policy) once the Celery app is finalised. Call it once at import time, e.g. in a `tasks`
    module (each app's is imported by `load_catalog`) or the app's `ready()`.
    """
    from config.queues import QUEUES

    if queue is not None and queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r} for {name!r} (queues: {', '.join(QUEUES)})")
    entry = CatalogEntry(
        name=name,
        description=description or f"{name} (an existing Celery task)",
        params=params,
        overlap=_overlap_checked(overlap),
        routed_to=queue,
    )
    catalog.register(entry)
    _adopt_when_finalized(name, time_limit=time_limit, soft_time_limit=soft_time_limit)
    return entry


def _adopt_when_finalized(
    name: str, *, time_limit: int | None, soft_time_limit: int | None
) -> None:
    # Function-level: the Celery app is configured from Django's settings, which import no app
    # code; the catalog is imported while they load.
    from config.celery import app

    def adopt(**_: Any) -> None:
        task = app.tasks.get(name)
        if task is None:
            return  # scheduler.E001 names the entry at startup
        base = _catalog_task_base()
        if not isinstance(task, base):
            # The task's own class stays (its run, its options); the catalog's base wraps its
            # call: one execution per delivery, and the overlap policy.
            own: type = task.__class__
            task.__class__ = type(own.__name__, (base, own), {})
        if time_limit is not None:
            task.time_limit = time_limit
        if soft_time_limit is not None:
            task.soft_time_limit = soft_time_limit

    if getattr(app, "finalized", False):  # an attribute the stubs lack
        adopt()
    else:
        app.on_after_finalize.connect(adopt, weak=False)


def catalog_task(
    *,
    name: str,
    description: str,
    params: type[Params] = NoParams,
    overlap: OverlapPolicy = OverlapPolicy.ALLOW,
    **task_options: Any,
) -> Callable[[F], Any]:
    """Register a Celery task and its catalog entry (module docstring)."""
    entry = CatalogEntry(
        name=name, description=description, params=params, overlap=_overlap_checked(overlap)
    )

    def decorate(function: F) -> Any:
        task_options.setdefault("base", _catalog_task_base())
        task = shared_task(name=name, **task_options)(function)
        catalog.register(entry)
        return task

    return decorate


def _catalog_task_base() -> type:
    from scheduler.worker.task_base import CatalogTask

    return CatalogTask


_discovered = False


def load_catalog() -> Catalog:
    """Import every app's tasks module so that all entries are registered."""
    global _discovered
    from django.apps import apps
    from django.utils.module_loading import autodiscover_modules

    # Once is enough (the modules stay imported), and lists call this per row: a discovery
    # costs some 0.3 ms.
    if apps.ready and not _discovered:
        autodiscover_modules("tasks")
        _discovered = True
    return catalog
