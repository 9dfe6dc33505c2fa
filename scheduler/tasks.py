from __future__ import annotations

from typing import Any

from django.utils import timezone

from scheduler.catalog import catalog_task


@catalog_task(
    name="scheduler.ping", description="Answer pong: the smallest round trip through a worker."
)
def ping() -> dict[str, Any]:
    return {"pong": True, "timestamp": timezone.now().isoformat()}
