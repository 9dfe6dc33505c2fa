from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone


@shared_task(name="scheduler.ping")
def ping() -> dict[str, Any]:
    return {"pong": True, "timestamp": timezone.now().isoformat()}
