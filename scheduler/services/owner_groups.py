"""The domain objects that own schedules (an agent, a tournament), and what staff do to all of an
object's schedules at once: pause, resume, run now, or choose them (`scheduler clear --agent`).

The scheduler imports no other app: each app registers how to find one of its objects' periodic
tasks (`owner_group_register`, from its AppConfig.ready), as it registers its alert targets.
The group writes go through the one-schedule services (pauses.py, schedules.py), so they are
validated and audited as the admin's "Pause all schedules" is, and change all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from scheduler.models import Source
from scheduler.services.errors import OwnerNotFound, ScheduleError, User
from scheduler.services.pauses import schedules_pause, schedules_resume
from scheduler.services.schedules import schedule_run_now

# What is done to the schedules found; an app may refuse some (a finished tournament's agents
# are not resumed nor run).
PAUSE, RESUME, RUN, SELECT = "pause", "resume", "run", "select"


@dataclass(frozen=True)
class OwnerKind:
    """How the periodic tasks of one kind of object are found: `schedules(key, action)` gives
    their names, raises LookupError when no object has `key`, and ValueError (saying why) when
    the object's schedules may not be given `action`."""

    name: str
    label: str
    schedules: Callable[[str, str], list[str]]


_owners: dict[str, OwnerKind] = {}


def owner_group_register(name: str, label: str, schedules: Callable[[str, str], list[str]]) -> None:
    """Let every interface act on the schedules of another app's objects ("agent": an agent's
    slug -> the names of its periodic tasks)."""
    _owners[name] = OwnerKind(name, label, schedules)


def owner_kinds() -> dict[str, str]:
    """The kinds registered, name -> label."""
    return {name: kind.label for name, kind in sorted(_owners.items())}


def owner_schedule_names(*, owner: str, key: str, action: str = SELECT) -> list[str]:
    """The names of the periodic tasks of object `key` of kind `owner`, sorted.

    OwnerNotFound when no such object (or kind) exists; a ScheduleError on `owner` when its
    schedules may not be given `action`."""
    kind = _owners.get(owner)
    if kind is None:
        known = ", ".join(sorted(_owners)) or "none registered"
        raise OwnerNotFound(f"no kind of schedule owner named {owner!r} (kinds: {known})")
    try:
        return sorted(kind.schedules(key, action))
    except LookupError as exc:
        raise OwnerNotFound(str(exc)) from None
    except ValueError as exc:
        raise ScheduleError.on(owner, str(exc)) from None


@transaction.atomic
def owner_schedules_pause(
    *,
    owner: str,
    key: str,
    note: str = "",
    until: datetime | str | None = None,
    tz: str | None = None,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> list[str]:
    """Pause every periodic task of the object (see `schedules_pause`); the names paused."""
    names = owner_schedule_names(owner=owner, key=key, action=PAUSE)
    if names:
        schedules_pause(
            names=names,
            note=note,
            until=until,
            tz=tz,
            actor=actor,
            actor_name=actor_name,
            source=source,
        )
    return names


@transaction.atomic
def owner_schedules_resume(
    *, owner: str, key: str, actor: User = None, actor_name: str = "", source: str = Source.SYSTEM
) -> list[str]:
    """Resume the paused periodic tasks of the object (see `schedules_resume`); the names
    resumed."""
    names = owner_schedule_names(owner=owner, key=key, action=RESUME)
    return schedules_resume(names=names, actor=actor, actor_name=actor_name, source=source)


@transaction.atomic
def owner_schedules_run(
    *, owner: str, key: str, actor: User = None, actor_name: str = "", source: str = Source.SYSTEM
) -> dict[str, str]:
    """Queue one run now of every periodic task of the object: name -> task id. All or none:
    one that cannot run (outside the catalog) sends nothing, as the runs go after commit."""
    names = owner_schedule_names(owner=owner, key=key, action=RUN)
    return {
        name: schedule_run_now(name=name, actor=actor, actor_name=actor_name, source=source)
        for name in names
    }
