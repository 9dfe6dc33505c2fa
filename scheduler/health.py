"""Health of the parts the product needs: database, Redis, workers."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from scheduler.redis_connection import describe_redis_url, get_redis
from scheduler.workers import ping_workers, workers_seen_within


@dataclass
class Check:
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    checks: dict[str, Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unhealthy",
            "checks": {name: asdict(check) for name, check in self.checks.items()},
        }


def check_database() -> Check:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return Check(ok=False, detail=f"database unreachable: {exc}")
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return Check(ok=True, detail=connection.vendor, data={"latency_ms": latency_ms})


def check_redis() -> Check:
    started = time.perf_counter()
    try:
        get_redis().ping()
    except Exception as exc:
        return Check(
            ok=False, detail=f"Redis at {describe_redis_url(settings.REDIS_URL)} unreachable: {exc}"
        )
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return Check(ok=True, detail="ping answered", data={"latency_ms": latency_ms})


def check_workers(*, window: float | None = None) -> Check:
    window = settings.WORKER_HEALTH_WINDOW if window is None else window
    try:
        seen = workers_seen_within(window)
        if not seen:
            # Workers record heartbeats every few seconds; none recorded may only mean they run
            # older code, so ask them directly before calling the workers down.
            ping_workers(timeout=1.0)
            seen = workers_seen_within(window)
    except Exception as exc:
        return Check(ok=False, detail=f"cannot tell which workers are alive: {exc}")
    if not seen:
        return Check(ok=False, detail=f"no worker answered in the last {window:g} s")
    age = round(time.time() - max(seen.values()), 2)
    return Check(
        ok=True,
        detail=f"{len(seen)} worker(s) answered in the last {window:g} s",
        data={"workers": sorted(seen), "last_seen_seconds_ago": age},
    )


def health_report() -> HealthReport:
    return HealthReport(
        checks={
            "database": check_database(),
            "redis": check_redis(),
            "workers": check_workers(),
        }
    )
