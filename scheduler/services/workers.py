"""Controls of one worker, by hostname: grow or shrink its pool, set its autoscale range, shut it
down warm (it finishes the tasks it runs, then exits). Each is a broadcast over the broker
addressed to that worker alone, waiting a bounded time for its answer, and audited under the name
"worker:HOSTNAME" once the worker took it; the dashboard (through the API), the API and the CLI
call these.

What the worker does is asynchronous: a pool grown is being repopulated when the answer comes,
and a worker asked to shut down is finishing its tasks. `inspect stats` shows the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from config.celery import app
from scheduler.models import AuditEntry
from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.observability.worker_pools import (
    RESIZABLE_POOLS,
    WorkerPool,
    reply_timeout,
    worker_answers,
    worker_pool,
)
from scheduler.services.audit import audit_write
from scheduler.services.errors import ScheduleError, User, WorkerNotFound, WorkerRefused

# The most pool processes one worker may be given through these controls (and autoscale's max).
POOL_MAX = 64
# A worker's hostname as Celery makes them ("name@host"): what is safe to address and audit.
HOSTNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,189}")
# How long ago a worker that no longer answers may have been heard from to be named as known.
_KNOWN_FOR = 24 * 3600
_AUTOSCALE_HINT = "start it with `celery -A config worker --autoscale=MAX,MIN` to use autoscale"


@dataclass(frozen=True)
class WorkerChange:
    """What a control did: the worker's answer, and the pool before and after (as asked: the
    worker gets there within a few seconds)."""

    hostname: str
    action: str
    detail: str
    changes: dict[str, list[Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "action": self.action,
            "detail": self.detail,
            "changes": self.changes,
        }


def _checked_hostname(hostname: str) -> str:
    if not isinstance(hostname, str) or not HOSTNAME_PATTERN.fullmatch(hostname):
        raise ScheduleError.on(
            "hostname",
            f"{str(hostname)[:80]!r} is not a worker hostname (such as worker@host: letters, "
            "digits and _.@:+-, at most 190 characters)",
        )
    return hostname


def _count(value: Any, *, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScheduleError.on(name, f"must be a whole number from {low} to {high}, not {value!r}")
    return value


def _not_found(hostname: str) -> WorkerNotFound:
    timeout = reply_timeout()
    if hostname in workers_seen_within(_KNOWN_FOR):
        return WorkerNotFound(
            hostname,
            f"worker {hostname} did not answer within {timeout:g} s: it is stopped, restarting "
            "or too busy to answer",
        )
    return WorkerNotFound(
        hostname,
        f"no worker named {hostname} answered within {timeout:g} s "
        "(`manage.py scheduler worker list` lists the workers online)",
    )


def _pool(hostname: str) -> WorkerPool:
    pool = worker_pool(hostname)
    if pool is None:
        raise _not_found(hostname)
    return pool


def _reason(error: Any) -> str:
    """A worker's refusal as words: Celery sends a failed command as the repr of its error."""
    text = str(error)
    match = re.fullmatch(r"\w+\((['\"])(.*)\1\)", text, flags=re.DOTALL)
    return match.group(2) if match else text


def _answer(hostname: str, replies: Any, *, what: str) -> str:
    """The worker's `ok` answer to a control; WorkerNotFound or WorkerRefused otherwise."""
    answers = [reply[hostname] for reply in replies or [] if hostname in reply]
    answer = answers[0] if answers else None
    if not isinstance(answer, dict):
        raise _not_found(hostname)
    if "error" in answer:
        reason = _reason(answer["error"])
        if "Autoscale not enabled" in reason:
            raise WorkerRefused(
                hostname, f"worker {hostname} was not started with --autoscale; {_AUTOSCALE_HINT}"
            )
        raise WorkerRefused(hostname, f"worker {hostname} refused to {what}: {reason}")
    return str(answer.get("ok", ""))


def _resizable(pool: WorkerPool, *, verb: str) -> None:
    if pool.autoscale is not None:
        raise WorkerRefused(
            pool.hostname,
            f"worker {pool.hostname} autoscales (max {pool.autoscale.max}, min "
            f"{pool.autoscale.min}): change its autoscale range instead of {verb} its pool",
        )
    if not pool.resizable:
        raise WorkerRefused(
            pool.hostname,
            f"worker {pool.hostname} runs a {pool.kind} pool, which cannot be resized (only "
            f"{', '.join(sorted(RESIZABLE_POOLS))} pools can)",
        )


def _audited(change: WorkerChange, *, actor: User, actor_name: str, source: str) -> WorkerChange:
    audit_write(
        None,
        name=f"worker:{change.hostname}",
        action=change.action,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes=change.changes,
    )
    return change


def worker_pool_grow(
    *, hostname: str, n: int, source: str, actor: User = None, actor_name: str = ""
) -> WorkerChange:
    """Add `n` processes to `hostname`'s pool (Celery's `pool_grow`).

    ScheduleError naming `grow` (or `hostname`) for bad input; WorkerNotFound when it does not
    answer; WorkerRefused when it autoscales, its pool cannot grow, or it refuses.
    """
    _checked_hostname(hostname)
    _count(n, name="grow", low=1, high=POOL_MAX)
    pool = _pool(hostname)
    _resizable(pool, verb="growing")
    if pool.processes + n > POOL_MAX:
        raise ScheduleError.on(
            "grow",
            f"{pool.processes} + {n} processes is more than {POOL_MAX}: grow by at most "
            f"{max(POOL_MAX - pool.processes, 0)}",
        )
    replies = app.control.pool_grow(
        n, destination=[hostname], reply=True, timeout=reply_timeout(), limit=1
    )
    detail = _answer(hostname, replies, what="grow its pool")
    change = WorkerChange(
        hostname=hostname,
        action=AuditEntry.Action.POOL_GROWN.value,
        detail=detail,
        changes={"processes": [pool.processes, pool.processes + n]},
    )
    return _audited(change, actor=actor, actor_name=actor_name, source=source)


def worker_pool_shrink(
    *, hostname: str, n: int, source: str, actor: User = None, actor_name: str = ""
) -> WorkerChange:
    """Stop `n` idle processes of `hostname`'s pool (Celery's `pool_shrink`); at least one is
    left. Errors as `worker_pool_grow`'s, naming `shrink`; WorkerRefused too when too few of
    its processes are idle."""
    _checked_hostname(hostname)
    _count(n, name="shrink", low=1, high=POOL_MAX)
    pool = _pool(hostname)
    _resizable(pool, verb="shrinking")
    if n >= pool.processes:
        raise ScheduleError.on(
            "shrink",
            f"worker {hostname} has {pool.processes} process(es): shrink by at most "
            f"{max(pool.processes - 1, 0)}, one must be left (shut it down to stop it)",
        )
    replies = app.control.pool_shrink(
        n, destination=[hostname], reply=True, timeout=reply_timeout(), limit=1
    )
    detail = _answer(hostname, replies, what="shrink its pool")
    change = WorkerChange(
        hostname=hostname,
        action=AuditEntry.Action.POOL_SHRUNK.value,
        detail=detail,
        changes={"processes": [pool.processes, pool.processes - n]},
    )
    return _audited(change, actor=actor, actor_name=actor_name, source=source)


def worker_autoscale(
    *,
    hostname: str,
    max_processes: int,
    min_processes: int | None = None,
    source: str,
    actor: User = None,
    actor_name: str = "",
) -> WorkerChange:
    """Set the range `hostname` autoscales its pool in (Celery's `autoscale`); `min_processes`
    left out keeps its minimum. Only a worker started with `--autoscale` can: any other is refused
    (WorkerRefused saying so). ScheduleError naming `max` or `min` for bad numbers."""
    _checked_hostname(hostname)
    high = _count(max_processes, name="max", low=1, high=POOL_MAX)
    low = None
    if min_processes is not None:
        low = _count(min_processes, name="min", low=0, high=POOL_MAX)
        if low > high:
            raise ScheduleError.on("min", f"must not be more than max ({high}), not {low}")
    pool = _pool(hostname)
    if pool.autoscale is None:
        raise WorkerRefused(
            hostname,
            f"worker {hostname} was not started with --autoscale, so it cannot autoscale "
            f"(it runs {pool.processes} {pool.kind} process(es)); {_AUTOSCALE_HINT}",
        )
    new_min = pool.autoscale.min if low is None else low
    if new_min > high:
        raise ScheduleError.on(
            "max", f"must not be less than the worker's min ({new_min}): give a min too"
        )
    replies = app.control.autoscale(
        high, new_min, destination=[hostname], reply=True, timeout=reply_timeout(), limit=1
    )
    detail = _answer(hostname, replies, what="autoscale")
    change = WorkerChange(
        hostname=hostname,
        action=AuditEntry.Action.AUTOSCALED.value,
        detail=detail,
        changes={
            "autoscale": [
                {"max": pool.autoscale.max, "min": pool.autoscale.min},
                {"max": high, "min": new_min},
            ]
        },
    )
    return _audited(change, actor=actor, actor_name=actor_name, source=source)


def worker_shutdown(
    *, hostname: str, source: str, actor: User = None, actor_name: str = ""
) -> WorkerChange:
    """Ask `hostname` alone to shut down warm: it stops taking tasks, finishes those it runs,
    then exits (a supervisor such as systemd may start it again). WorkerNotFound when it does
    not answer a ping first: a shutdown is never sent to nobody."""
    _checked_hostname(hostname)
    if not worker_answers(hostname):
        raise _not_found(hostname)
    # No reply: the worker raises its shutdown while handling the command, before answering.
    app.control.shutdown(destination=[hostname])
    change = WorkerChange(
        hostname=hostname,
        action=AuditEntry.Action.SHUT_DOWN.value,
        detail="warm shutdown requested: it finishes the tasks it runs, then exits",
        changes={"state": ["running", "shutting down"]},
    )
    return _audited(change, actor=actor, actor_name=actor_name, source=source)
