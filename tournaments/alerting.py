"""Alert rules may target a tournament: the runs of its rounds carry its object header."""

from __future__ import annotations

from scheduler.services import alert_target_register
from tournaments.models import Tournament


def tournament_key(text: str) -> str:
    """A tournament's id (or exact name) -> the id its runs carry; ValueError when none."""
    found = Tournament.objects.filter(pk=int(text)).first() if text.isdigit() else None
    if found is None:
        found = Tournament.objects.filter(name=text).order_by("-starts_at").first()
    if found is None:
        raise ValueError(f"no tournament with the id or name {text!r}")
    return str(found.pk)


alert_target_register("tournament", "Tournament", tournament_key)
