"""A tournament owns its periodic task (its agents' rounds) and the schedules whose parameters
name it: `manage.py scheduler
pause|resume|run --tournament ID` (and `clear --tournament`) act on it as the tournament admin's
actions do: paused whatever its status, resumed or run only while it is live."""

from __future__ import annotations

from scheduler.services import owner_group_register
from tournaments.models import Tournament
from tournaments.selectors import tournament_schedule_names


def tournament_schedules(key: str, action: str) -> list[str]:
    """The name of the periodic task of the tournament with id (or exact name) `key`, if it has
    one; LookupError when there is no such tournament, ValueError when it is not live and
    `action` would make its agents run."""
    found = Tournament.objects.filter(pk=int(key)).first() if key.isdigit() else None
    if found is None:
        found = Tournament.objects.filter(name=key).order_by("-starts_at").first()
    if found is None:
        raise LookupError(f"no tournament with the id or name {key!r}")
    if action in ("resume", "run") and found.status != Tournament.Status.LIVE:
        raise ValueError(
            f"{found.name} is {found.status}: only a live tournament's agents run; "
            f"nothing was {'resumed' if action == 'resume' else 'run'}"
        )
    # Its own periodic task and every schedule whose parameters name it, as its admin's.
    return tournament_schedule_names(tournaments=[found])[found.pk]


owner_group_register("tournament", "Tournament", tournament_schedules)
