"""Figures every interface shows the same way: the API, the CLI and the admin read a run's
duration here; the dashboard and /metrics take percentiles here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a model: this package is imported before Django is set up
    from django_celery_results.models import TaskResult

# While a run is in one of these, date_done moves on every save: it has no duration yet.
UNFINISHED_STATES = frozenset({"PENDING", "STARTED", "RECEIVED", "RETRY"})


def result_duration(result: TaskResult) -> float | None:
    """Seconds from the start of a stored run to its end, once it is over (else None)."""
    # date_started: a column the stubs bundled with celery-types predate.
    started = getattr(result, "date_started", None)
    if started is None or result.date_done is None:
        return None
    if result.status in UNFINISHED_STATES:
        return None
    return max((result.date_done - started).total_seconds(), 0.0)


def duration_text(seconds: float) -> str:
    """0.0421 -> '42 ms', 3.5 -> '3.5 s', 125 -> '2 min 5 s', 7260 -> '2 h 1 min'."""
    value = float(seconds)
    if value < 1:
        return f"{round(value * 1000)} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile: the smallest value with `fraction` of the values at or
    below it (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil without floats drifting past n
    return ordered[int(rank) - 1]
