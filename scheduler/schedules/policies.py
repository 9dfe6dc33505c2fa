"""Per-schedule policies: what happens when runs would overlap, and after beat was down."""

from __future__ import annotations

from django.db import models

from scheduler.core.durations import duration_written


class OverlapPolicy(models.TextChoices):
    ALLOW = "allow", "Allow overlapping runs"
    SKIP = "skip", "Skip a run while the previous run is still running"
    BUFFER_ONE = (
        "buffer_one",
        "Run once more right after the running run (further overlaps dropped)",
    )
    BUFFER_ALL = "buffer_all", "Queue every overlapping run and run them in order"
    CANCEL_OTHER = "cancel_other", "Cancel the running run (cooperatively), then start"
    TERMINATE_OTHER = "terminate_other", "Terminate the running run at once, then start"
    # Stored as such and resolved when a run starts (scheduler/worker/task_base.py), so that a
    # schedule follows a later change of its catalog task's declared policy.
    DEFAULT = "default", "The task's default"


class MisfirePolicy(models.TextChoices):
    RUN_ONCE = "run_once", "Run once for all the runs missed during downtime"
    SKIP = "skip", "Skip the missed runs and wait for the next due time"


class CatchUp(models.TextChoices):
    """Which runs missed while beat was down are made (within the schedule's catch-up window)."""

    NONE = "none", "None: wait for the next due time"
    LATEST = "latest", "The latest missed run, once"
    ALL = "all", "Every missed run, in order"


# The misfire policies of earlier versions, kept as names for catch-up settings.
CATCHUP_PRESETS: dict[str, tuple[str, int | None]] = {
    MisfirePolicy.SKIP.value: (CatchUp.NONE.value, None),
    MisfirePolicy.RUN_ONCE.value: (CatchUp.LATEST.value, None),
}


def misfire_of(catchup: str) -> str:
    """The misfire column kept for readers of earlier versions: only catch-up none skips."""
    return MisfirePolicy.SKIP.value if catchup == CatchUp.NONE else MisfirePolicy.RUN_ONCE.value


def catchup_summary(catchup: str, window: int | None) -> str:
    """'none', 'latest, within 1h', 'all, however late': catch-up as every interface shows it."""
    if catchup == CatchUp.NONE:
        return str(catchup)
    limit = f"within {duration_written(window)}" if window is not None else "however late"
    return f"{catchup}, {limit}"


def runs_left_summary(remaining: int | None, max_runs: int | None) -> str:
    """'3 of 5 runs left'; '' when the schedule has no limit on its runs."""
    if max_runs is None:
        return ""
    left = max_runs if remaining is None else remaining
    return f"{left} of {max_runs} {'run' if max_runs == 1 else 'runs'} left"
