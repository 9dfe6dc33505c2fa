"""Who a schedule belongs to, read from its task's parameters: a schedule of `agents.post` with
`{"agent": "helper"}` belongs to agent "helper", whichever interface made or changed it.

The scheduler knows no agents or tournaments: each app registers the parameters that name its
objects (`schedule_owner_register`, from its AppConfig.ready). The schedule services
(services/schedules.py: create, update, save) ask `owner_of_params` on every write; the owner is
kept in the periodic task's object header (beat's runs carry it, so their events reach the
object's live group) and the app's `link` makes its own row (an agent's schedules inline).
`task_enqueue` (services/runs.py) asks too, for a run queued by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django_celery_beat.models import PeriodicTask

from scheduler.protocol import OBJECT_HEADER, object_header

Owner = tuple[str, object]


@dataclass(frozen=True)
class OwnerKind:
    """A domain object schedules can belong to: its type ("agent"), the parameters naming it,
    `resolve` (a parameter's value -> the object's id, None when there is no such object) and
    `link` (make the app's own row tying the periodic task to the object with that id)."""

    object_type: str
    params: tuple[str, ...]
    resolve: Callable[[Any], object | None]
    link: Callable[[PeriodicTask, object], None] | None = None


_kinds: dict[str, OwnerKind] = {}


def schedule_owner_register(
    object_type: str,
    *,
    params: tuple[str, ...],
    resolve: Callable[[Any], object | None],
    link: Callable[[PeriodicTask, object], None] | None = None,
) -> None:
    """Let schedules whose task takes one of `params` belong to an `object_type` object.

    Registering again (a module imported twice) replaces, never duplicates.
    """
    _kinds[object_type] = OwnerKind(object_type, tuple(params), resolve, link)


def owner_of_params(params: Mapping[str, Any] | None) -> Owner | None:
    """The object validated parameters name, by the kinds in the order they were registered;
    None when they name none."""
    if not isinstance(params, Mapping):
        return None
    for kind in _kinds.values():
        for param in kind.params:
            value = params.get(param)
            if value is None or value == "":
                continue
            object_id = kind.resolve(value)
            if object_id is not None:
                return kind.object_type, object_id
    return None


def headers_with_owner(headers: str | None, owner: Owner) -> str:
    """A periodic task's headers (JSON text) naming `owner`; the other headers kept. Headers
    that are not a JSON object are replaced, as beat reads them (scheduler/beat/scheduler.py)."""
    try:
        stored = json.loads(headers or "{}")
    except json.JSONDecodeError:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    stored.update(object_header(*owner))
    return json.dumps(stored)


def header_owner(headers: str | None) -> str | None:
    """The object header's value ("agent:3") in a periodic task's headers, or None."""
    try:
        stored = json.loads(headers or "{}")
    except json.JSONDecodeError:
        return None
    value = stored.get(OBJECT_HEADER) if isinstance(stored, dict) else None
    return value if isinstance(value, str) and ":" in value else None


def owner_link(periodic_task: PeriodicTask, owner: Owner) -> None:
    """The app's own row tying `periodic_task` to `owner` (its `link`), once the task is saved."""
    kind = _kinds.get(owner[0])
    if kind is not None and kind.link is not None:
        kind.link(periodic_task, owner[1])
