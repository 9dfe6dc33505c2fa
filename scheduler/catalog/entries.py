"""The catalog's registry: each entry's name, description, queue, parameters model and declared
overlap policy; the parameter checks; how an overlap policy resolves. Declarations only: it
imports nothing of the processes that consult it (beat refuses a task outside it, the worker
resolves a run's overlap policy from it)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
    declarable = [policy.value for policy in OverlapPolicy if policy != OverlapPolicy.DEFAULT]
    if overlap not in declarable:
        raise ValueError(
            f"a catalog entry declares its overlap policy: {', '.join(declarable)} "
            f"(not {str(overlap)!r})"
        )
    return OverlapPolicy(overlap)
