"""Per-schedule policies: what happens when runs would overlap, and after beat was down."""

from __future__ import annotations

from django.db import models


class OverlapPolicy(models.TextChoices):
    ALLOW = "allow", "Allow overlapping runs"
    SKIP = "skip", "Skip a run while the previous run is still running"
    # Stored as such and resolved when a run starts (scheduler/worker/task_base.py), so that a
    # schedule follows a later change of its catalog task's declared policy.
    DEFAULT = "default", "The task's default"


class MisfirePolicy(models.TextChoices):
    RUN_ONCE = "run_once", "Run once for all the runs missed during downtime"
    SKIP = "skip", "Skip the missed runs and wait for the next due time"
