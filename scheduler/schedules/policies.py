"""Per-schedule policies: what happens when runs would overlap, and after beat was down."""

from __future__ import annotations

from django.db import models


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
