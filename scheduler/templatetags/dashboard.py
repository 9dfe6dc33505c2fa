"""Filters of the dashboard's templates; static/scheduler/dashboard.js formats the same way."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """0.0421 -> '42 ms', 3.5 -> '3.5 s', 125 -> '2 min 5 s'; '—' when unknown."""
    if seconds is None or seconds == "":
        return "—"
    value = float(seconds)
    if value < 1:
        return f"{round(value * 1000)} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@register.filter
def percent(fraction: float | None) -> str:
    """0.953 -> '95%'; '—' when there is nothing to rate."""
    if fraction is None:
        return "—"
    return f"{round(fraction * 100)}%"


# Celery's state names as staff read them; the badge's data-state keeps the raw name.
STATE_LABELS = {
    "PENDING": "queued",
    "RECEIVED": "received",
    "STARTED": "running",
    "SUCCESS": "success",
    "FAILURE": "failed",
    "RETRY": "retrying",
    "REVOKED": "revoked",
    "SKIPPED": "skipped",
}


@register.filter
def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.lower() or "unknown")
