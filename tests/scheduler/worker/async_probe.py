"""Catalog tasks with `async def` bodies, for a real worker (`celery worker -I
tests.scheduler.worker.async_probe`): named outside the routed prefixes, so they declare their
queue. Not imported by the test process."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django_celery_beat.models import PeriodicTask

from scheduler.catalog import Params, catalog_task

PROBE = "tests.async_probe"
SLEEPER = "tests.async_sleeper"


class ProbeParams(Params):
    value: int


@catalog_task(
    name=PROBE,
    description="Answer from the worker's loop (tests).",
    queue="default",
    params=ProbeParams,
)
async def async_probe(value: int) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {
        "double": value * 2,
        "pid": os.getpid(),
        "loop": id(asyncio.get_running_loop()),
        # The async ORM, from the body.
        "periodic_tasks": await PeriodicTask.objects.acount(),
    }


@catalog_task(
    name=SLEEPER,
    description="Outlive its soft limit (tests).",
    queue="default",
    soft_time_limit=1,
    time_limit=5,
)
async def async_sleeper() -> str:
    await asyncio.sleep(30)
    return "never"
