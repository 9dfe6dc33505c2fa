"""Schedules belong to the tournament their task's `tournament_id` (or `tournament`) parameter
names, whichever interface makes or changes them: the object header the scheduler keeps on them
(scheduler/services/owners.py) is the link. The tournament's page lists them and its pause and
resume cover them (`tournament_schedule_names`); the tournament's own periodic task (its live
loop, `Tournament.periodic_task`) is one of them."""

from __future__ import annotations

from scheduler.services import schedule_owner_register
from tournaments.models import Tournament


def tournament_id_of(value: object) -> int | None:
    """The id of the tournament `value` names (its id), or None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if isinstance(value, str) and not value.isdigit():
        return None
    return Tournament.objects.filter(pk=int(value)).values_list("pk", flat=True).first()


schedule_owner_register(
    "tournament", params=("tournament_id", "tournament"), resolve=tournament_id_of
)
