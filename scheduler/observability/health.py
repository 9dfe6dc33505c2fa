"""Health of the parts the product needs: database, Redis, workers, and beat.

/healthz (`health_report`) checks what serving requests and running tasks depend on; beat is
only in `full_health_report` (the `scheduler.health_check` task, `manage.py scheduler health`),
so that a load balancer does not take the web servers out while beat restarts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from django.conf import settings
from django.db import connection

from scheduler.core.redis_connection import describe_redis, get_redis, redis_key
from scheduler.observability.worker_heartbeats import ping_workers, workers_seen_within
from scheduler.protocol import BEAT_HEARTBEAT_KEY, BEAT_STANDBY_KEY, MISSED_RUNS_KEY

# Beat's keys (scheduler/protocol.py). The leader writes {"at": epoch seconds, "pid",
# "hostname", "id", "leader", "role", "entries", "leading_since"} to BEAT_HEARTBEAT_KEY every few
# seconds; standbys write the same under BEAT_STANDBY_KEY:<id>, expiring after a minute.
# MISSED_RUNS_KEY maps a periodic task name to {"task_id", "published_at", "flagged_at"}: runs
# beat published that had no result within BEAT_MISSED_RUN_GRACE (its watchdog); kept a day.


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
        return Check(ok=False, detail=f"Redis at {describe_redis()} unreachable: {exc}")
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


def beat_heartbeat() -> dict[str, Any] | None:
    """Beat's last heartbeat ({"at", "pid", "hostname"}), or None when none was recorded.

    ValueError when the key holds something other than such a heartbeat.
    """
    raw = cast("bytes | None", get_redis().get(redis_key(BEAT_HEARTBEAT_KEY)))
    if raw is None:
        return None
    try:
        heartbeat = json.loads(raw)
    except (TypeError, ValueError):
        raise ValueError(f"the beat heartbeat is not JSON: {raw!r:.100}") from None
    if not isinstance(heartbeat, dict) or not isinstance(heartbeat.get("at"), int | float):
        raise ValueError(f"the beat heartbeat has no time: {raw!r:.100}")
    return heartbeat


def check_beat(*, window: float | None = None) -> Check:
    window = settings.BEAT_HEALTH_WINDOW if window is None else window
    try:
        heartbeat = beat_heartbeat()
    except Exception as exc:
        return Check(ok=False, detail=f"cannot tell whether beat is alive: {exc}")
    if heartbeat is None:
        return Check(ok=False, detail="beat has never recorded a heartbeat: is it running?")
    age = round(time.time() - float(heartbeat["at"]), 2)
    data = {
        "hostname": heartbeat.get("hostname", ""),
        "pid": heartbeat.get("pid"),
        "leader": heartbeat.get("leader") or heartbeat.get("id"),
        "entries": heartbeat.get("entries"),
        "last_seen_seconds_ago": age,
    }
    try:
        data["standbys"] = [standby.get("id") for standby in beat_standbys()]
    except Exception:  # the heartbeat was readable: report it
        data["standbys"] = []
    if age > window:
        return Check(
            ok=False,
            detail=f"beat last recorded a heartbeat {age:g} s ago (more than {window:g} s)",
            data=data,
        )
    leader = data["leader"] or "beat"
    return Check(ok=True, detail=f"{leader} recorded a heartbeat {age:g} s ago", data=data)


def beat_standbys() -> list[dict[str, Any]]:
    """The heartbeats of the beats standing by (not leading), newest first."""
    redis: Any = get_redis()
    keys = list(redis.scan_iter(match=f"{redis_key(BEAT_STANDBY_KEY)}:*", count=100))
    standbys = []
    for raw in redis.mget(keys) if keys else []:
        try:
            heartbeat = json.loads(raw) if raw is not None else None
        except (TypeError, ValueError):
            continue
        if isinstance(heartbeat, dict) and isinstance(heartbeat.get("at"), int | float):
            standbys.append(heartbeat)
    return sorted(standbys, key=lambda heartbeat: -float(heartbeat["at"]))


def missed_runs() -> dict[str, dict[str, Any]]:
    """Periodic task name -> the run of it beat's watchdog flagged (no result in time)."""
    raw = cast("dict[bytes, bytes]", get_redis().hgetall(redis_key(MISSED_RUNS_KEY)))
    flagged = {}
    for name, value in raw.items():
        try:
            record = json.loads(value)
        except (TypeError, ValueError):
            continue
        if isinstance(record, dict):
            flagged[name.decode()] = record
    return flagged


def check_missed_runs() -> Check:
    try:
        flagged = missed_runs()
    except Exception as exc:
        return Check(ok=False, detail=f"cannot read the missed runs: {exc}")
    if not flagged:
        return Check(ok=True, detail="no missed run flagged in the last day")
    names = ", ".join(sorted(flagged)[:5]) + (" ..." if len(flagged) > 5 else "")
    return Check(
        ok=False,
        detail=f"{len(flagged)} periodic task(s) had a run with no result in time: {names}",
        data={"runs": flagged},
    )


def full_health_report() -> HealthReport:
    """Everything /healthz checks, beat, and the runs beat's watchdog flagged."""
    report = health_report()
    report.checks["beat"] = check_beat()
    report.checks["missed_runs"] = check_missed_runs()
    return report
