"""A task that answers the headers its run was delivered with: the integration tests' worker
imports it (`celery worker -I tests.scheduler.backfill.probe`), so that a test can read what
reached the worker from the run's stored result. Not a catalog task: tests put it in the
catalog of their own process for the length of a test."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from scheduler import protocol

PROBE = "tests.backfill_probe"
HEADERS = (
    protocol.PERIODIC_TASK_HEADER,
    protocol.SCHEDULED_FOR_HEADER,
    protocol.PUBLISHED_AT_HEADER,
    protocol.BACKFILL_ID_HEADER,
    protocol.OVERLAP_POLICY_HEADER,
)


@shared_task(name=PROBE, bind=True)
def backfill_probe(self: Any, **kwargs: Any) -> dict[str, Any]:
    # A worker puts the message's headers on the request.
    return {
        "headers": {name: getattr(self.request, name, None) for name in HEADERS},
        "kwargs": kwargs,
    }
