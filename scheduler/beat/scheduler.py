"""Our beat: a scheduler that stays fast with tens of thousands of periodic tasks, and one leader.

The django-celery-beat tables stay the one source of truth (the admin, the CLI and the API edit
them through `scheduler.services`); this class replaces how beat reads and runs them: a heap by
next check time, incremental change notices, batched bursts, one leader holding a Redis lock,
fencing, a heartbeat and a missed-run watchdog. Why each is built so: docs/architecture.md,
"Beat: why it is built this way".

Configured with CELERY_BEAT_SCHEDULER = "scheduler.beat:DatabaseScheduler" (the default).
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import json
import logging
import math
import os
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.beat import Scheduler
from celery.utils.time import maybe_make_aware
from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import F
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)
from django_celery_results.models import TaskResult
from redis.exceptions import RedisError

from scheduler.beat.changes import CHANGES_CHANNEL, Changes
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.live.events import event_record_safely
from scheduler.models import DeclaredState, ScheduleOptions
from scheduler.protocol import BEAT_HEARTBEAT_KEY, BEAT_STANDBY_KEY, MISSED_RUNS_KEY
from scheduler.protocol import BEAT_LEADER_KEY as LEADER_KEY
from scheduler.schedules.declared import DeclarationError, declared_schedules, unsynced
from scheduler.schedules.parsing import (
    CrontabSpec,
    IntervalSpec,
    ParsedSchedule,
    ScheduleParseError,
    crontab_sets,
)
from scheduler.schedules.policies import CatchUp, MisfirePolicy
from scheduler.schedules.timing import GRACE, Timing, first_due, plan, run_id

logger = logging.getLogger(__name__)

# A run later than this is a misfire (beat was down), not the ordinary lag of a tick.
MISFIRE_GRACE = GRACE
# Seconds between looks at the change marker, lock renewals and standby attempts to lead.
SYNC_INTERVAL = 1.0
# Seconds between comparisons of every row with what is loaded (the safety net of notices).
RECONCILE_INTERVAL = 300.0
# Seconds a tick may spend comparing rows with the entries held (the rest waits for the next).
COMPARE_BUDGET = 0.025
# Most runs recorded and published per fencing check.
BATCH = 500
# Messages buffered before the batch's pipeline goes to the broker (one round trip), looked at
# after each entry: a batch of BATCH entries with one run each is one round trip, and at most
# this many plus one entry's catch-up (MAX_CATCHUP_RUNS) wait in memory.
PIPELINE_MESSAGES = 1000
# kombu's own flush of a producer batch once it holds this many Redis commands (a message is an
# LPUSH and the PUBLISH of its task-sent event): never, so that beat sends each pipeline itself,
# between entries, knows which entries a failed one carried, and stops the batch there.
_KOMBU_BATCH_COMMANDS = 1_000_000_000
_HEARTBEAT_EVERY = 5.0
_WATCHDOG_EVERY = 30.0
# Rows read per query when loading or comparing.
_CHUNK = 1000

_SCHEDULE_MODELS: dict[str, type[Any]] = {
    "interval": IntervalSchedule,
    "crontab": CrontabSchedule,
    "solar": SolarSchedule,
    "clocked": ClockedSchedule,
}
_ROW_FIELDS = (
    "id",
    "name",
    "task",
    "args",
    "kwargs",
    "queue",
    "exchange",
    "routing_key",
    "priority",
    "expire_seconds",
    "headers",
    "interval_id",
    "crontab_id",
    "solar_id",
    "clocked_id",
    "last_run_at",
    "total_run_count",
    "one_off",
    "start_time",
    "expires",
    "date_changed",
)


def is_misfire(*, remaining: timedelta, grace: timedelta = MISFIRE_GRACE) -> bool:
    """`remaining` is the schedule's time to the next run: negative when a run is overdue."""
    return remaining < -grace


# --- Entries -----------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Entry:
    """One enabled periodic task as beat runs it (no model instance: 50k of them stay small)."""

    id: int
    name: str
    task: str
    args: str  # JSON, parsed when published
    kwargs: str
    options: dict[str, Any]
    kind: str  # "interval", "crontab", "solar" or "clocked"
    schedule_id: int
    schedule: Any  # the Celery schedule object, shared by the entries of one schedule row
    last_run_at: datetime
    total_run_count: int
    one_off: bool
    start_time: datetime | None
    expires: datetime | None
    misfire: str
    row: tuple[Any, ...]  # the row as read: a reload that reads the same row changes nothing
    version: int = 0
    # The schedule in our terms (None: solar, or a hand-made row: Celery's rules decide), and
    # what else decides its runs (scheduler/schedules/timing.py).
    parsed: ParsedSchedule | None = None
    ran: bool = True  # last_run_at is a run's due time (else: when the row was saved)
    jitter: int = 0
    catchup: str = CatchUp.LATEST.value
    catchup_window: int | None = None
    remaining: int | None = None


def entry_timing(entry: Entry) -> Timing:
    """What decides the runs of an entry with a `parsed` schedule, as every display reads it."""
    assert entry.parsed is not None
    remaining = entry.remaining
    if entry.one_off:
        left = 0 if entry.total_run_count else 1
        remaining = left if remaining is None else min(remaining, left)
    return Timing(
        key=entry.id,
        schedule=entry.parsed,
        anchor=entry.last_run_at,
        ran=entry.ran,
        start=entry.start_time,
        end=entry.expires,
        remaining=remaining,
        jitter=entry.jitter,
        catchup=entry.catchup,
        catchup_window=entry.catchup_window,
    )


# Seconds before a run whose publish failed (the broker down past the publisher's retries) is
# published again; not recorded meanwhile, so it is not lost.
PUBLISH_RETRY_AFTER = 1.0


class NotPublished(Exception):
    """A run the broker did not take this time."""


class _PipelineFailed(Exception):
    """The batch's pipeline did not go through: which of its messages Redis took is unknown."""


class _LeadershipLost(Exception):
    """The leadership could not be confirmed before a publish: nothing more goes out."""


# Namespace of the task ids of periodic runs (run_task_id).
_RUN_IDS = uuid.UUID("5d0c7a52-3b1e-4f0c-9a4e-2f6b8c1d7e90")


def run_task_id(entry: Entry, due: datetime | None = None) -> str:
    """The task id of the entry's run due at `due` (default: its next): the same whichever beat
    (or backfill) publishes it, so the workers run it once (`scheduler.schedules.timing.run_id`).

    A schedule Celery's rules decide (solar) is named by the run's number and the time of the
    run before it: a count reset or an edit that moves the last run gives new ids.
    """
    if entry.parsed is not None:
        due = due or first_due(entry_timing(entry)) or entry.last_run_at
        return run_id(entry.id, due)
    key = f"{entry.id}:{entry.total_run_count + 1}:{entry.last_run_at.timestamp():.6f}"
    return str(uuid.uuid5(_RUN_IDS, key))


# What evaluating an entry says to do.
WAIT, RUN, SKIP, FINISH = "wait", "run", "skip", "finish"


@dataclass(slots=True, frozen=True)
class Decision:
    action: str
    next_check: float = 0.0  # seconds from now; for WAIT, RUN (after the run) and SKIP
    remaining: timedelta | None = None  # SKIP: how overdue the run was
    reason: str = ""
    dues: tuple[datetime, ...] = ()  # RUN: the due times of the runs to publish, in order
    skipped: int = 0  # RUN and SKIP: missed runs not made (catch-up)
    anchor: datetime | None = None  # RUN and SKIP: the last run's due time, once recorded


def evaluate(entry: Entry, now: datetime, tz: Any) -> Decision:
    """What to do with `entry` at `now`: as every display computes its runs
    (scheduler/schedules/timing.py); a solar or hand-made schedule as django-celery-beat does."""
    if entry.parsed is not None:
        step = plan(entry_timing(entry), now)
        if step.runs:
            return Decision(RUN, dues=step.runs, skipped=step.skipped, anchor=step.anchor)
        if step.finished:
            return Decision(FINISH, reason=step.finished)
        if step.skipped:
            overdue = now - step.anchor if step.anchor is not None else timedelta(0)
            return Decision(SKIP, remaining=-overdue, skipped=step.skipped, anchor=step.anchor)
        wait = (step.wait_until - now).total_seconds() if step.wait_until else math.inf
        return Decision(WAIT, max(wait, 0.0))
    return _evaluate_by_celery(entry, now, tz)


def _evaluate_by_celery(entry: Entry, now: datetime, tz: Any) -> Decision:
    if entry.start_time is not None and now < entry.start_time:
        return Decision(WAIT, max((entry.start_time - now).total_seconds(), 0.0))
    if entry.expires is not None and now >= entry.expires:
        return Decision(FINISH, reason="expired")
    if entry.one_off and entry.total_run_count > 0:
        return Decision(FINISH, reason="one-off task already ran")
    last_run_at = maybe_make_aware(entry.last_run_at).astimezone(tz)
    state = entry.schedule.is_due(last_run_at)
    if not state.is_due:
        return Decision(WAIT, _seconds(state.next))
    if entry.misfire == MisfirePolicy.SKIP and entry.kind != "clocked":
        remaining = entry.schedule.remaining_estimate(last_run_at)
        if is_misfire(remaining=remaining):
            return Decision(SKIP, remaining=remaining)
    return Decision(RUN, _seconds(state.next))


def _seconds(value: Any) -> float:
    if value is None:
        return math.inf  # a spent clocked schedule
    return max(float(value), 0.0)


class Schedules:
    """Celery schedule objects by schedule row, built once per row and shared by its entries."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, int], Any] = {}
        self._parsed: dict[tuple[str, int], ParsedSchedule | None] = {}

    def get(self, kind: str, schedule_id: int) -> Any:
        return self._objects.get((kind, schedule_id))

    def parsed(self, kind: str, schedule_id: int) -> ParsedSchedule | None:
        return self._parsed.get((kind, schedule_id))

    def load(self, wanted: Iterable[tuple[str, int]]) -> None:
        missing: dict[str, set[int]] = {}
        for kind, schedule_id in wanted:
            if (kind, schedule_id) not in self._objects:
                missing.setdefault(kind, set()).add(schedule_id)
        for kind, ids in missing.items():
            model = _SCHEDULE_MODELS[kind]
            ordered = sorted(ids)
            for start in range(0, len(ordered), _CHUNK):
                for row in model.objects.filter(pk__in=ordered[start : start + _CHUNK]):
                    self._objects[(kind, row.pk)] = row.schedule
                    self._parsed[(kind, row.pk)] = _parsed_schedule(kind, row)

    def forget(self, kind: str, ids: Iterable[int]) -> None:
        for schedule_id in ids:
            self._objects.pop((kind, schedule_id), None)
            self._parsed.pop((kind, schedule_id), None)

    def __len__(self) -> int:
        return len(self._objects)


def _parsed_schedule(kind: str, row: Any) -> ParsedSchedule | None:
    """A schedule row in our terms, as scheduler.schedules.rows reads it for every display;
    None for solar and for a hand-made row we cannot read (Celery's own rules run those)."""
    if kind == "interval":
        if row.period not in ("days", "hours", "minutes", "seconds") or row.every <= 0:
            return None
        return ParsedSchedule(
            kind="interval",
            timezone="UTC",
            description="",
            interval=IntervalSpec(every=row.every, period=row.period),
        )
    if kind == "crontab":
        spec = CrontabSpec(
            minute=str(row.minute),
            hour=str(row.hour),
            day_of_week=str(row.day_of_week),
            day_of_month=str(row.day_of_month),
            month_of_year=str(row.month_of_year),
        )
        try:
            crontab_sets(spec)
        except ScheduleParseError:
            return None
        return ParsedSchedule(
            kind="crontab", timezone=str(row.timezone), description="", crontab=spec
        )
    if kind == "clocked":
        return ParsedSchedule(
            kind="clocked", timezone="UTC", description="", clocked=row.clocked_time
        )
    return None


def _kind_of(row: dict[str, Any]) -> tuple[str, int] | None:
    for kind in ("interval", "crontab", "solar", "clocked"):
        if row[f"{kind}_id"] is not None:
            return kind, row[f"{kind}_id"]
    return None


def _options(row: dict[str, Any]) -> dict[str, Any]:
    """The message options, as django-celery-beat's ModelEntry builds them."""
    options: dict[str, Any] = {
        name: row[name]
        for name in ("queue", "exchange", "routing_key", "priority")
        if row[name] is not None
    }
    if row["expire_seconds"]:
        options["expires"] = row["expire_seconds"]
    try:
        headers = json.loads(row["headers"] or "{}")
    except ValueError:
        headers = {}
    if not isinstance(headers, dict):
        headers = {}
    headers["periodic_task_name"] = row["name"]
    options["headers"] = headers
    return options


# What beat reads of a periodic task's ScheduleOptions. `remaining_runs` is not part of an
# entry's fingerprint: beat counts it down itself (a change of the limit saves the task too).
_OPTION_FIELDS = ("catchup", "catchup_window", "jitter", "max_runs", "remaining_runs")
_NO_OPTIONS: dict[str, Any] = dict.fromkeys(_OPTION_FIELDS)


def _fingerprint(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        *(row[name] for name in _ROW_FIELDS),
        *(row["options"][name] for name in _OPTION_FIELDS[:-1]),
    )


def _add_misfire(rows: list[dict[str, Any]]) -> None:
    """Set each row's "options" from its ScheduleOptions (all None when it has none)."""
    found = {
        values["periodic_task_id"]: values
        for values in ScheduleOptions.objects.filter(
            periodic_task_id__in=[row["id"] for row in rows]
        ).values("periodic_task_id", *_OPTION_FIELDS)
    }
    for row in rows:
        row["options"] = found.get(row["id"], _NO_OPTIONS)


@dataclass
class _Comparison:
    """A comparison of every row with the entries held, under way (see _compare_all)."""

    marker: datetime | None  # the change marker when it began: what it will have seen
    after: int = 0  # rows up to this id are compared
    seen: set[int] = field(default_factory=set)


# --- Leadership --------------------------------------------------------------------------------

# Renew the lock only if we still hold it: the fencing check and the renewal in one step.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""
# Take the lock when it is free, or when it is still ours: held before Redis restarted (Redis
# keeps the key), it would otherwise stand idle until its TTL ran out.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def publish_bound() -> float:
    """The longest one publish to the broker can take (seconds): a connection and a command,
    each cut short by the broker transport's socket timeouts, tried once (beat publishes with
    Celery's retries off: a run not published is tried again a second later, fenced again)."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    connect = float(options.get("socket_connect_timeout") or options.get("socket_timeout") or 0)
    command = float(options.get("socket_timeout") or 0)
    if not connect or not command:
        return math.inf  # no timeouts: a publish may take for ever, so every one is fenced
    return connect + command + 0.5


class Leadership:
    """The Redis lock that makes one beat of many the one that publishes.

    Fencing: a leader renews the lock (PEXPIRE of its TTL) right before a batch of publishes,
    so no other beat can take it until that renewal's start plus the TTL. A publish may start
    only while it will surely end before then (`fenced_until`: the renewal's start, plus the
    TTL, less the longest a publish can take); past it, the lock is renewed again first. A
    leader cut off from Redis therefore never publishes once another could lead: after a
    partition heals, the old leader's publishes that were held up have failed, and it finds
    the lock taken.
    """

    def __init__(self, identity: str, ttl: float) -> None:
        self.identity = identity
        self.ttl_ms = max(int(ttl * 1000), 1000)
        self.held = False
        self.since: float | None = None
        self._unreachable = False
        # time.monotonic() until which a publish may start (see the class docstring).
        self.fenced_until = -math.inf
        self._bound = publish_bound()

    @property
    def key(self) -> str:
        return redis_key(LEADER_KEY)

    def hold(self) -> bool:
        """Renew the lock if held, else try to take it; whether this beat leads now."""
        asked_at = time.monotonic()
        self.fenced_until = -math.inf
        try:
            redis: Any = get_redis()
            if self.held:
                self.held = bool(redis.eval(_RENEW, 1, self.key, self.identity, self.ttl_ms))
                if not self.held:
                    logger.warning("beat %s lost the leadership", self.identity)
                    self.since = None
            else:
                self.held = bool(redis.eval(_ACQUIRE, 1, self.key, self.identity, self.ttl_ms))
                if self.held:
                    self.since = time.time()
                    logger.info("beat %s leads", self.identity)
            if self._unreachable:
                logger.info("beat reaches Redis again")
            self._unreachable = False
        except (RedisError, OSError) as exc:
            # Without Redis there is no broker to publish to either; and no way to know that no
            # other beat leads. Stand by until Redis answers.
            if not self._unreachable:
                logger.warning("beat cannot reach Redis, standing by: %s", exc)
            self._unreachable = True
            self.held = False
            self.since = None
        if self.held:
            self.fenced_until = asked_at + self.ttl_ms / 1000 - self._bound
        return self.held

    def confirm(self) -> bool:
        """The fencing check before a batch of publishes: still ours (renewed), or not any
        more."""
        if not self.held:
            return False
        return self.hold()

    def may_publish(self) -> bool:
        """The fencing check before each publish: within the window of the last renewal, or
        renewed now."""
        if self.held and time.monotonic() < self.fenced_until:
            return True
        return self.confirm()

    def leader(self) -> str | None:
        try:
            value: Any = get_redis().get(self.key)
        except (RedisError, OSError):
            return None
        return value.decode() if isinstance(value, bytes) else None

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self.since = None
        with contextlib.suppress(RedisError, OSError):  # else it expires by itself
            get_redis().eval(_RELEASE, 1, self.key, self.identity)


# --- The scheduler -----------------------------------------------------------------------------


@dataclass
class TickStats:
    """What the last tick did; read by tests and the benchmark."""

    published: int = 0
    skipped: int = 0
    finished: int = 0
    reloaded: int = 0
    full_reloads: int = 0
    sync_seconds: float = 0.0
    leader: bool = False
    published_ids: list[str] = field(default_factory=list)


def warn_unsynced_declarations() -> dict[str, str]:
    """Log a warning naming each schedule declared in code whose periodic task differs from the
    declaration (`manage.py scheduler sync` makes them match); what was found."""
    try:
        declared = declared_schedules()
    except DeclarationError as exc:
        logger.error("the schedules declared in code cannot be read: %s", exc)
        return {}
    names = [item.name for item in declared]
    rows = {
        row.name: row
        for row in PeriodicTask.objects.filter(name__in=names).select_related(
            "options", "interval", "crontab", "clocked", "solar"
        )
    }
    synced = dict(
        DeclaredState.objects.filter(periodic_task__name__in=names).values_list(
            "periodic_task__name", "fields"
        )
    )
    found = unsynced(declared, rows, synced)
    if found:
        listed = "; ".join(f"{name!r}: {why}" for name, why in sorted(found.items()))
        logger.warning(
            "%d schedule(s) declared in code differ from the database (run `manage.py "
            "scheduler sync`, --dry-run to see how): %s",
            len(found),
            listed,
        )
    return found


class DatabaseScheduler(Scheduler):
    """Celery beat scheduler over the django-celery-beat tables (docs/architecture.md, "Beat")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leadership = Leadership(self.identity, ttl=settings.BEAT_LEADER_TTL)
        self.entries: dict[int, Entry] = {}
        self.schedules = Schedules()
        self._due: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._loaded = False
        self._seen_change: datetime | None = None
        self._next_sync = 0.0
        self._next_reconcile = 0.0
        self._comparison: _Comparison | None = None
        self._changes = Changes()
        self._subscription: Any = None
        self._waiting = False
        self._closed = False
        self._subscribe_after = 0.0
        self._last_heartbeat = 0.0
        self._said_standby = False
        self._next_watchdog = 0.0
        self._published: deque[tuple[float, str, str]] = deque(maxlen=200_000)
        self.stats = TickStats()
        super().__init__(*args, **kwargs)
        # Celery's Service sleeps at most this long between ticks; ours wait on the notices.
        self.max_interval = SYNC_INTERVAL  # type: ignore[assignment]

    # Celery's Scheduler API ----------------------------------------------------------------

    def setup_schedule(self) -> None:
        # The rows are loaded when this beat first leads (a standby holds nothing); what code
        # declares is compared with them once, at start.
        warn_unsynced_declarations()

    @property
    def schedule(self) -> dict[str, Any]:  # type: ignore[override]
        # Celery's `beat` command prints how many entries there are; nothing iterates them.
        return {entry.name: entry for entry in self.entries.values()}

    @property
    def info(self) -> str:
        ttl = self.leadership.ttl_ms / 1000
        return f"    . leader lock -> {self.leadership.key} (ttl {ttl:g} s)"

    def sync(self) -> None:
        pass  # every run is recorded when it is published

    def close(self) -> None:
        self.leadership.release()
        subscription, self._subscription = self._subscription, None
        self._closed = True
        # Celery's SIGTERM handler calls this from inside our wait on the channel, then raises
        # SystemExit there: closing the connection under that read would turn the exit into a
        # ValueError from redis-py. The wait closes it on its way out instead.
        if subscription is not None and not self._waiting:
            with contextlib.suppress(RedisError, OSError):
                subscription.close()
        super().close()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One tick, then wait for the next due entry or a change notice (whichever is first).

        Returns 0 after waiting here, so that Celery's Service loop ticks again at once; the
        seconds to sleep when no notice channel could be opened.
        """
        wait = self.tick_once()
        return self._wait_for_notice(wait)

    # The tick ---------------------------------------------------------------------------------

    def tick_once(self) -> float:
        """Lead or stand by, pick changes up, publish what is due; seconds until next needed."""
        now = time.time()
        self.stats = TickStats()
        leader = self.leadership.hold()
        self.stats.leader = leader
        self._heartbeat(now, leader)
        if not leader:
            if self._loaded or not self._said_standby:
                logger.info(
                    "beat %s stands by (leader: %s)",
                    self.identity,
                    self.leadership.leader() or "none yet",
                )
                self._said_standby = True
            if self._loaded:
                self._forget_everything()
            return SYNC_INTERVAL
        self._said_standby = False
        try:
            if not self._loaded:
                self._load_all()
            else:
                self._sync_changes(now)
            self._run_due(now)
            self._watchdog(now)
        except DatabaseError as exc:
            # The database restarting, say: the entries held may be half-updated. Start again
            # from the rows (the runs recorded there) once it answers; beat itself stays up.
            logger.warning("beat cannot reach the database, retrying in a second: %s", exc)
            self._forget_everything()
            return SYNC_INTERVAL
        finally:
            # Beat is a long-running process: treat each tick as Django treats a request (not
            # inside a caller's transaction: tests, an embedded beat).
            if not transaction.get_connection().in_atomic_block:
                close_old_connections()
        return self._next_wait(now)

    def _next_wait(self, now: float) -> float:
        if self._comparison is not None:
            return 0.0  # a comparison goes on at once
        until_due = self._due[0][0] - now if self._due else math.inf
        return max(0.0, min(until_due, self._next_sync - now, SYNC_INTERVAL))

    def _run_due(self, now: float) -> None:
        moment = datetime.fromtimestamp(now, tz=UTC)
        tz = self.app.timezone
        runs: list[tuple[Entry, Decision]] = []
        skips: list[tuple[Entry, Decision]] = []
        finished: list[tuple[Entry, str]] = []
        while self._due and self._due[0][0] <= now:
            _, _, entry_id, version = heapq.heappop(self._due)
            entry = self.entries.get(entry_id)
            if entry is None or entry.version != version:
                continue  # removed or changed since this item was pushed
            decision = evaluate(entry, moment, tz)
            if decision.action == RUN:
                runs.append((entry, decision))
                if decision.skipped and entry.catchup == CatchUp.ALL:
                    # Some missed runs were too late for the window: said. Under `latest`
                    # the one run made stands for all it missed (as run_once did).
                    skips.append((entry, decision))
            elif decision.action == SKIP:
                skips.append((entry, decision))
            elif decision.action == FINISH:
                finished.append((entry, decision.reason))
            else:
                self._push(entry, now + decision.next_check)
        if skips:
            self._skip_missed(skips, moment)
        if finished:
            self._finish(finished)
        for start in range(0, len(runs), BATCH):
            if not self._publish(runs[start : start + BATCH], moment):
                # Not the leader any more: what was left is the new leader's.
                self._forget_everything()
                return

    def _publish(self, batch: list[tuple[Entry, Decision]], moment: datetime) -> bool:
        if not self.leadership.confirm():
            return False
        # SIGTERM/SIGINT wait until the batch is recorded: Celery's handler raises SystemExit
        # wherever it lands, and between publishing and recording that would publish the runs
        # a second time (dropped by the workers, but published).
        with _signals_held():
            with self.app.producer_or_acquire() as producer:
                done, failed, lost_lead = self._send_batch(batch, moment, producer)
            if done:
                self._record_runs(done)
        tz = self.app.timezone
        for entry, _, _ in done:
            if entry.one_off:
                self._remove(entry.id)
                continue
            after = evaluate(entry, moment, tz)
            self._push(entry, moment.timestamp() + max(after.next_check, 0.0))
        for entry in failed:
            self._push(entry, moment.timestamp() + PUBLISH_RETRY_AFTER)
        return not lost_lead

    def _send_batch(
        self, batch: list[tuple[Entry, Decision]], moment: datetime, producer: Any
    ) -> tuple[list[tuple[Entry, datetime, int]], list[Entry], bool]:
        """Publish the runs of `batch` in one Redis pipeline (one round trip per
        PIPELINE_MESSAGES): what went out or was refused for good (recorded), the entries to
        try again under the same task ids (not recorded), and whether the leadership was lost.

        Fenced (`Leadership`): before each entry and before each pipeline is sent, the
        leadership's window is checked (renewed past it); outside it nothing more goes out.

        Each message is made by Celery as `apply_async` makes it (routing, headers, signals, the
        task-sent event); kombu's producer batch holds its LPUSH and PUBLISH back until the
        pipeline is sent, at an entry's end, so an entry's runs share one fate. A broker kombu
        cannot batch for (the memory transport) gets each message at once, as before.
        """
        done: list[tuple[Entry, datetime, int]] = []  # published or refused for good: recorded
        failed: list[Entry] = []  # not published this time: tried again, under the same id
        # Entries whose messages wait in the pipeline, with their task ids.
        pending: list[tuple[Entry, datetime, int, list[str]]] = []
        buffered = 0
        tried = 0
        try:
            with _producer_batch(producer) as pipeline:
                publish = self._pipeline_options(producer)
                for entry, decision in batch:
                    if not self.leadership.may_publish():
                        raise _LeadershipLost
                    tried += 1
                    dues = decision.dues or (moment,)
                    made = 0
                    ids: list[str] = []
                    try:
                        for due in dues:
                            task_id = self._send(entry, producer, due, **publish)
                            made += 1
                            if task_id is not None:
                                ids.append(task_id)
                    except NotPublished:
                        if not made:
                            # The broker failed a message sent at once (no pipeline): the rest
                            # would wait for it too, and go out a second later instead.
                            failed.append(entry)
                            raise _PipelineFailed("a publish failed") from None
                        # Some of a catch-up went out: recorded up to there, the rest missed.
                        dues = dues[:made]
                    anchor = dues[-1] if entry.parsed is not None else moment
                    pending.append((entry, anchor, made, ids))
                    buffered += len(ids)
                    if buffered >= PIPELINE_MESSAGES:
                        self._flush(pipeline, pending, moment, done, failed)
                        buffered = 0
                self._flush(pipeline, pending, moment, done, failed)
        except _PipelineFailed:
            # The broker is away: the rest of the batch is not tried now (a second later).
            failed.extend(entry for entry, _ in batch[tried:])
        except _LeadershipLost:
            # Another beat may lead by now: what waits in the pipeline is dropped unsent and
            # nothing more goes out; the new leader publishes these runs under the same ids.
            failed.extend(entry for entry, _, _, _ in pending)
            pending.clear()
            failed.extend(entry for entry, _ in batch[tried:])
            return done, failed, True
        return done, failed, False

    def _pipeline_options(self, producer: Any) -> dict[str, Any]:
        """What `apply_async` is given besides the run's options when its message goes out in
        the batch's pipeline (none when the broker takes each message at once).

        No declaring of the message's queue with each message: every queue is declared once
        here, as the first publish to it on a connection does (cached by kombu). (No retry
        either, as for every publish of beat: `_send`.)
        """
        if not hasattr(producer, "batch") or not getattr(producer, "supports_batch_publish", False):
            return {}
        try:
            for queue in self.app.amqp.queues.values():
                producer.maybe_declare(queue)
        except Exception:
            # Declared with each message then: a failure is the run's, as without a pipeline.
            return {}
        return {"declare": []}

    def _flush(
        self,
        pipeline: Any,
        pending: list[tuple[Entry, datetime, int, list[str]]],
        moment: datetime,
        done: list[tuple[Entry, datetime, int]],
        failed: list[Entry],
    ) -> None:
        """Send the pipeline: its entries go to `done`, or all to `failed` when it failed.
        Not sent at all outside the leadership's window (_LeadershipLost)."""
        if pending and not self.leadership.may_publish():
            raise _LeadershipLost
        try:
            pipeline.flush()
        except Exception as exc:
            # Not recorded, so published again under the same ids: a message Redis took before
            # the connection broke is then a second copy, which the workers drop (as after a
            # leader died between publishing and recording).
            cause = exc.__cause__ or exc
            for entry, _, _, _ in pending:
                self._refuse(
                    entry,
                    f"could not be published: {type(cause).__name__}: {cause} "
                    f"(trying again in {PUBLISH_RETRY_AFTER:g} s)",
                )
                failed.append(entry)
            pending.clear()
            raise _PipelineFailed(str(cause)) from exc
        for entry, anchor, made, ids in pending:
            for task_id in ids:
                self._published.append((moment.timestamp(), task_id, entry.name))
                self.stats.published_ids.append(task_id)
            self.stats.published += len(ids)
            done.append((entry, anchor, made))
        pending.clear()

    def _record_runs(self, batch: list[tuple[Entry, datetime, int]]) -> None:
        """Record the runs just published: each entry's last run is the due time of the last
        one it made, and its count of runs (and of remaining runs) moves by how many it made
        (docs/architecture.md, "Beat": One leader). One UPDATE per distinct (due time, count):
        a burst of schedules due at the same moment is one statement."""
        one_offs = [entry.id for entry, _, _ in batch if entry.one_off]
        groups: dict[tuple[datetime, int], list[int]] = {}
        limited: dict[int, list[int]] = {}
        for entry, anchor, made in batch:
            groups.setdefault((anchor, made), []).append(entry.id)
            if entry.remaining is not None and made:
                limited.setdefault(made, []).append(entry.id)
        with transaction.atomic():
            for (anchor, made), ids in groups.items():
                PeriodicTask.objects.filter(pk__in=ids).update(
                    last_run_at=anchor, total_run_count=F("total_run_count") + made
                )
            for made, ids in limited.items():
                ScheduleOptions.objects.filter(
                    periodic_task_id__in=ids, remaining_runs__gte=made
                ).update(remaining_runs=F("remaining_runs") - made)
            if one_offs:
                PeriodicTask.objects.filter(pk__in=one_offs).update(enabled=False)
        for entry, anchor, made in batch:
            entry.last_run_at = anchor
            entry.ran = True
            entry.total_run_count += made
            if entry.remaining is not None:
                entry.remaining = max(entry.remaining - made, 0)

    def _send(
        self, entry: Entry, producer: Any, due: datetime | None = None, **publish: Any
    ) -> str | None:
        """Publish the run of `entry` due at `due` (`publish`: _pipeline_options); its task id,
        or None when it could not be published."""
        try:
            args = json.loads(entry.args or "[]")
            kwargs = json.loads(entry.kwargs or "{}")
        except ValueError as exc:
            self._refuse(entry, f"its arguments are not JSON ({exc}): not run")
            return None
        # Reading the registry finalises the app: every tasks module, so every catalog entry,
        # is loaded by then.
        task = self.app.tasks.get(entry.task)
        if not getattr(task, "in_catalog", False):  # False too for a task not registered here
            # Rows are written through the services, which check; one written by hand is not.
            self._refuse(entry, f"{entry.task!r} is not in the catalog: not run")
            return None
        published_at = datetime.now(UTC)
        due = due or published_at
        headers = dict(entry.options.get("headers", {}))
        # The run's intended time and when it went out: the task sees the first
        # (request.scheduled_for), the dispatch lag is measured from both.
        headers["scheduled_for"] = due.astimezone(UTC).isoformat()
        headers["published_at"] = published_at.isoformat()
        # Celery's publish retries off: each publish is bounded (`publish_bound`), so that the
        # fencing window holds, and a pipeline that failed is not sent again (which of its
        # commands Redis took is unknown); a run not published is tried again a second later.
        # `publish`: what the batch's pipeline asks besides (_pipeline_options).
        options = {
            **entry.options,
            **publish,
            "headers": headers,
            "task_id": run_task_id(entry, due),
            "retry": False,
        }
        try:
            if task is not None:
                result = task.apply_async(args, kwargs, producer=producer, **options)
            else:
                result = self.app.send_task(entry.task, args, kwargs, producer=producer, **options)
        except Exception as exc:
            self._refuse(
                entry,
                f"could not be published: {type(exc).__name__}: {exc} "
                f"(trying again in {PUBLISH_RETRY_AFTER:g} s)",
            )
            raise NotPublished(str(exc)) from exc
        return str(result.id)

    def _refuse(self, entry: Entry, message: str) -> None:
        """A run that will not go out: said on the dashboard and in `scheduler logs` too."""
        logger.error("%s: %s", entry.name, message)
        event_record_safely(
            type="task.failed",
            task_name=entry.task,
            periodic_task_name=entry.name,
            state="FAILURE",
            message=message,
        )

    def _skip_missed(self, skips: list[tuple[Entry, Decision]], moment: datetime) -> None:
        """Say which missed runs were not made (catch-up), and move past those no run records."""
        passed = [(entry, decision) for entry, decision in skips if decision.action == SKIP]
        groups: dict[datetime, list[int]] = {}
        for entry, decision in passed:
            groups.setdefault(decision.anchor or moment, []).append(entry.id)
        # An UPDATE, not save(): date_changed must not move (it would look like an edit).
        for anchor, ids in groups.items():
            PeriodicTask.objects.filter(pk__in=ids).update(last_run_at=anchor)
        tz = self.app.timezone
        for entry, decision in skips:
            if entry.parsed is None:
                message = f"runs missed for {-(decision.remaining or timedelta(0))} skipped "
                message += "(catch-up: none)"
            else:
                window = (
                    f" within {entry.catchup_window} s" if entry.catchup_window is not None else ""
                )
                message = (
                    f"{decision.skipped} run(s) missed while beat was down not made "
                    f"(catch-up: {entry.catchup}{window})"
                )
            logger.info("%s: %s", entry.name, message)
            event_record_safely(
                type="task.skipped",
                task_name=entry.task,
                periodic_task_name=entry.name,
                state="SKIPPED",
                message=message,
            )
            self.stats.skipped += 1
            if decision.action != SKIP:
                continue  # it made runs too: pushed when they were published
            entry.last_run_at = decision.anchor or moment
            entry.ran = True
            after = evaluate(entry, moment, tz)
            self._push(entry, moment.timestamp() + max(after.next_check, 1.0))

    def _finish(self, finished: list[tuple[Entry, str]]) -> None:
        PeriodicTask.objects.filter(pk__in=[entry.id for entry, _ in finished]).update(
            enabled=False
        )
        for entry, reason in finished:
            logger.info("%s: disabled (%s)", entry.name, reason)
            self._remove(entry.id)
            self.stats.finished += 1

    # Heap and entries -------------------------------------------------------------------------

    def _push(self, entry: Entry, when: float) -> None:
        if math.isinf(when):
            return  # never due again (a spent clocked schedule): nothing to look at
        self._seq += 1
        heapq.heappush(self._due, (when, self._seq, entry.id, entry.version))

    def _remove(self, entry_id: int) -> None:
        self.entries.pop(entry_id, None)  # its heap items are dropped when they surface

    def _put(self, entry: Entry) -> None:
        """Add or replace an entry; due to be looked at now."""
        previous = self.entries.get(entry.id)
        if previous is not None:
            entry.version = previous.version + 1
            same_schedule = (previous.kind, previous.schedule_id) == (
                entry.kind,
                entry.schedule_id,
            )
            # A save that read the row before our last run would put last_run_at back (the
            # admin's form, say): keep the later one, or the run would repeat.
            if same_schedule and previous.last_run_at > entry.last_run_at:
                entry.last_run_at = previous.last_run_at
                entry.total_run_count = max(entry.total_run_count, previous.total_run_count)
        self.entries[entry.id] = entry
        self._push(entry, 0.0)
        if len(self._due) > 2 * len(self.entries) + 1000:
            self._compact()

    def _compact(self) -> None:
        self._due = [
            item
            for item in self._due
            if (entry := self.entries.get(item[2])) is not None and entry.version == item[3]
        ]
        heapq.heapify(self._due)

    def _forget_everything(self) -> None:
        gc.unfreeze()  # what _load_all froze may be collected again
        self.entries.clear()
        self._due.clear()
        self._comparison = None
        self._loaded = False
        self._published.clear()

    # Loading and changes ----------------------------------------------------------------------

    def _rows(self, queryset: Any) -> Iterator[dict[str, Any]]:
        last = 0
        while True:
            chunk = self._chunk(queryset, after=last)
            yield from chunk
            if len(chunk) < _CHUNK:
                return
            last = chunk[-1]["id"]

    def _chunk(self, queryset: Any, *, after: int) -> list[dict[str, Any]]:
        """The next _CHUNK rows by id after `after`, with their misfire policy.

        The policy comes from a second query, not a join: with the join PostgreSQL may sort the
        whole rest of the table for every chunk; alone, each walks the primary key's index.
        """
        rows = list(queryset.filter(pk__gt=after).order_by("pk").values(*_ROW_FIELDS)[:_CHUNK])
        _add_misfire(rows)
        return rows

    def _entry(self, row: dict[str, Any]) -> Entry | None:
        kind = _kind_of(row)
        if kind is None:
            return None
        schedule = self.schedules.get(*kind)
        if schedule is None:
            return None
        parsed = self.schedules.parsed(*kind)
        options = row["options"]
        last_run_at = row["last_run_at"]
        ran = last_run_at is not None
        if last_run_at is None:
            # As django-celery-beat: the first run one period after the task was saved, or at
            # start_time when it has one (scheduler/schedules/timing.py's first_due).
            last_run_at = row["date_changed"] or datetime.now(UTC)
            if row["start_time"] is not None and parsed is None:
                last_run_at = last_run_at - timedelta(days=365 * 30)
        catchup = options["catchup"] or CatchUp.LATEST.value
        return Entry(
            id=row["id"],
            name=row["name"],
            task=row["task"],
            args=row["args"],
            kwargs=row["kwargs"],
            options=_options(row),
            kind=kind[0],
            schedule_id=kind[1],
            schedule=schedule,
            last_run_at=last_run_at,
            total_run_count=row["total_run_count"],
            one_off=row["one_off"] or kind[0] == "clocked",
            start_time=row["start_time"],
            expires=row["expires"],
            misfire=MisfirePolicy.SKIP if catchup == CatchUp.NONE else MisfirePolicy.RUN_ONCE,
            row=_fingerprint(row),
            parsed=parsed,
            ran=ran or bool(row["total_run_count"]),
            jitter=options["jitter"] or 0,
            catchup=catchup,
            catchup_window=options["catchup_window"],
            remaining=options["remaining_runs"],
        )

    def _enabled(self) -> Any:
        return PeriodicTask.objects.filter(enabled=True)

    def _apply_rows(self, rows: list[dict[str, Any]], *, keep_unchanged: bool) -> int:
        """Put the entries of `rows`; the number that changed."""
        self.schedules.load(kind for row in rows if (kind := _kind_of(row)) is not None)
        changed = 0
        for row in rows:
            previous = self.entries.get(row["id"])
            if keep_unchanged and previous is not None and previous.row == _fingerprint(row):
                continue
            entry = self._entry(row)
            if entry is None:
                self._remove(row["id"])
            else:
                self._put(entry)
            changed += 1
        return changed

    def _load_all(self) -> None:
        """Read every enabled row (on first leading): nothing is published until it is done."""
        started = time.perf_counter()
        self._seen_change = PeriodicTasks.last_change()
        self.entries.clear()
        self._due.clear()
        self._comparison = None
        batch: list[dict[str, Any]] = []
        for row in self._rows(self._enabled()):
            batch.append(row)
            if len(batch) >= _CHUNK:
                self.stats.reloaded += self._apply_rows(batch, keep_unchanged=False)
                batch = []
        self.stats.reloaded += self._apply_rows(batch, keep_unchanged=False)
        heapq.heapify(self._due)
        # What was just loaded lives as long as beat leads: out of the collector's way, or each
        # full collection walks every entry (a pause of a tenth of a second at 100k rows).
        gc.collect()
        gc.freeze()
        self._loaded = True
        self._next_reconcile = time.time() + RECONCILE_INTERVAL
        self.stats.full_reloads += 1
        self.stats.sync_seconds += time.perf_counter() - started
        logger.info(
            "beat loaded %d periodic task(s) in %.3f s",
            len(self.entries),
            time.perf_counter() - started,
        )

    def _compare_all(self) -> bool:
        """Compare rows with the entries held, a chunk at a time for up to COMPARE_BUDGET s.

        A comparison of every row (after a change that sent no notice, and every
        RECONCILE_INTERVAL) takes about a second at 100k rows: done whole, it would hold up
        what is due meanwhile. So it goes on over as many ticks as it needs (the tick after one
        that left it unfinished comes at once), and due entries go out between its chunks.
        Returns whether it is finished.
        """
        started = time.perf_counter()
        if self._comparison is None:
            self._comparison = _Comparison(marker=PeriodicTasks.last_change())
        comparison = self._comparison
        while True:
            rows = self._chunk(self._enabled(), after=comparison.after)
            comparison.seen.update(row["id"] for row in rows)
            self.stats.reloaded += self._apply_rows(rows, keep_unchanged=True)
            if len(rows) < _CHUNK:
                break
            comparison.after = rows[-1]["id"]
            if time.perf_counter() - started >= COMPARE_BUDGET:
                self.stats.sync_seconds += time.perf_counter() - started
                return False
        # Held, but no longer an enabled row (changed without a notice while nothing watched).
        for entry_id in [entry_id for entry_id in self.entries if entry_id not in comparison.seen]:
            self._remove(entry_id)
            self.stats.reloaded += 1
        self._seen_change = comparison.marker
        self._comparison = None
        self._next_reconcile = time.time() + RECONCILE_INTERVAL
        self.stats.full_reloads += 1
        self.stats.sync_seconds += time.perf_counter() - started
        logger.info("beat compared every row with the %d entries held", len(self.entries))
        return True

    def _sync_changes(self, now: float) -> None:
        notices = self._changes.take()
        if notices:
            self._apply_notices(notices)
        if self._comparison is not None:
            self._compare_all()
            return
        if now >= self._next_reconcile:
            self._compare_all()
            return
        if now < self._next_sync and not notices:
            return
        self._next_sync = now + SYNC_INTERVAL
        marker = PeriodicTasks.last_change()
        if notices:
            self._seen_change = marker  # what the notices named is what changed
        elif marker != self._seen_change:
            # A change that sent no notice (a bulk update, a lost notice): compare every row.
            self._compare_all()

    def apply_changes(self, notices: Changes) -> None:
        """Apply change notices at once (tests, the benchmark)."""
        self._apply_notices(notices)

    def _apply_notices(self, notices: Changes) -> None:
        started = time.perf_counter()
        task_ids = set(notices.tasks)
        for kind, ids in notices.schedules.items():
            self.schedules.forget(kind, ids)
            if kind in _SCHEDULE_MODELS and ids:
                task_ids.update(
                    PeriodicTask.objects.filter(**{f"{kind}_id__in": list(ids)}).values_list(
                        "pk", flat=True
                    )
                )
        for entry_id in notices.deleted:
            if entry_id in self.entries:
                self._remove(entry_id)
                self.stats.reloaded += 1
        ordered = sorted(task_ids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            rows = list(PeriodicTask.objects.filter(pk__in=chunk).values(*_ROW_FIELDS, "enabled"))
            _add_misfire(rows)
            enabled = []
            for row in rows:
                if row.pop("enabled"):
                    enabled.append(row)
                elif row["id"] in self.entries:  # disabled
                    self._remove(row["id"])
                    self.stats.reloaded += 1
            for entry_id in set(chunk) - {row["id"] for row in rows}:  # deleted meanwhile
                if entry_id in self.entries:
                    self._remove(entry_id)
                    self.stats.reloaded += 1
            self.stats.reloaded += self._apply_rows(enabled, keep_unchanged=False)
            if self._comparison is not None:
                self._comparison.seen.update(row["id"] for row in enabled)
        self.stats.sync_seconds += time.perf_counter() - started

    def _wait_for_notice(self, seconds: float) -> float:
        """Wait up to `seconds` for change notices; 0 after waiting, else the seconds to sleep."""
        if seconds <= 0:
            return 0.0
        subscription = self._subscribe()
        if subscription is None:
            return seconds
        deadline = time.monotonic() + seconds
        self._waiting = True
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                message = subscription.get_message(timeout=remaining)
                if message is None:
                    continue
                self._changes.add_message(message.get("data"))
                # Take whatever else is waiting, and go: a change is applied at once.
                while (message := subscription.get_message(timeout=0)) is not None:
                    self._changes.add_message(message.get("data"))
                return 0.0
        except (RedisError, OSError) as exc:
            logger.warning("beat lost its change notices channel: %s", exc)
            self._drop_subscription()
            return max(deadline - time.monotonic(), 0.0)
        finally:
            self._waiting = False
            if self._closed:
                with contextlib.suppress(RedisError, OSError, ValueError):
                    subscription.close()
        return 0.0

    def _subscribe(self) -> Any:
        if self._subscription is not None:
            return self._subscription
        if time.monotonic() < self._subscribe_after:
            return None
        try:
            subscription = get_redis().pubsub(ignore_subscribe_messages=True)
            subscription.subscribe(redis_key(CHANGES_CHANNEL))
        except (RedisError, OSError) as exc:
            logger.warning("beat cannot subscribe to change notices: %s", exc)
            self._subscribe_after = time.monotonic() + SYNC_INTERVAL * 5
            return None
        self._subscription = subscription
        return subscription

    def _drop_subscription(self) -> None:
        subscription, self._subscription = self._subscription, None
        self._subscribe_after = time.monotonic() + SYNC_INTERVAL
        # Notices sent while the channel was down reached nobody: compare every row next time
        # (changes made before the first subscription moved the marker, which the load read).
        self._seen_change = None
        if subscription is not None:
            with contextlib.suppress(RedisError, OSError):
                subscription.close()

    # Heartbeat and watchdog -------------------------------------------------------------------

    def _heartbeat(self, now: float, leader: bool) -> None:
        if now - self._last_heartbeat < _HEARTBEAT_EVERY and leader == getattr(
            self, "_heartbeat_leader", None
        ):
            return
        self._last_heartbeat = now
        self._heartbeat_leader = leader
        payload = {
            "at": now,
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "id": self.identity,
            "leader": self.identity if leader else self.leadership.leader(),
            "role": "leader" if leader else "standby",
            "entries": len(self.entries),
            "leading_since": self.leadership.since,
        }
        key = BEAT_HEARTBEAT_KEY if leader else f"{BEAT_STANDBY_KEY}:{self.identity}"
        try:
            get_redis().set(redis_key(key), json.dumps(payload), ex=3600 if leader else 60)
        except (RedisError, OSError):  # beat keeps scheduling while Redis hiccups
            logger.warning("could not record the beat heartbeat", exc_info=True)

    def heartbeat(self) -> None:
        """Record the heartbeat now (tests; beat records it itself every few seconds)."""
        self._last_heartbeat = 0.0
        self._heartbeat(time.time(), self.leadership.held)

    def _watchdog(self, now: float) -> None:
        if now < self._next_watchdog:
            return
        self._next_watchdog = now + _WATCHDOG_EVERY
        flag_missed_runs(self._published, now=now, grace=settings.BEAT_MISSED_RUN_GRACE)


class _EachAtOnce:
    """A producer batch that holds nothing back: each message goes out as it is published."""

    def __enter__(self) -> _EachAtOnce:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def flush(self) -> None:
        pass


def _producer_batch(producer: Any) -> Any:
    """kombu's producer batch (kombu 5.7 and later; it publishes at once itself to a broker it
    cannot batch for), or one that publishes at once with an older kombu."""
    batch = getattr(producer, "batch", None)
    if batch is None:
        return _EachAtOnce()
    return batch(max_size=_KOMBU_BATCH_COMMANDS)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT for this thread until the block ends (then they arrive)."""
    held = {signal.SIGTERM, signal.SIGINT}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask here
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def flag_missed_runs(
    published: deque[tuple[float, str, str]], *, now: float, grace: float
) -> list[tuple[str, str]]:
    """Flag the runs published more than `grace` seconds ago that have no result row.

    `published` holds (published at, task id, periodic task name), oldest first; the runs
    looked at are taken off it. Returns the (periodic task name, task id) flagged.
    """
    old: list[tuple[float, str, str]] = []
    while published and published[0][0] <= now - grace:
        old.append(published.popleft())
    flagged: list[tuple[str, str]] = []
    for start in range(0, len(old), _CHUNK):
        chunk = old[start : start + _CHUNK]
        answered = set(
            TaskResult.objects.filter(task_id__in=[task_id for _, task_id, _ in chunk])
            .exclude(status="PENDING")
            .values_list("task_id", flat=True)
        )
        for at, task_id, name in chunk:
            if task_id in answered:
                continue
            due = datetime.fromtimestamp(at, tz=UTC).isoformat()
            message = f"the run published at {due} has no result after {grace:g} s"
            logger.warning("%s: %s (task %s)", name, message, task_id)
            record = {"task_id": task_id, "published_at": due, "flagged_at": now}
            try:
                key = redis_key(MISSED_RUNS_KEY)
                pipe = get_redis().pipeline()
                pipe.hset(key, name, json.dumps(record))
                pipe.expire(key, 86400)
                pipe.execute()
            except (RedisError, OSError):
                logger.warning("could not flag the missed run of %s", name, exc_info=True)
            event_record_safely(
                type="task.missed",
                task_id=task_id,
                periodic_task_name=name,
                state="MISSED",
                message=message,
            )
            flagged.append((name, task_id))
    return flagged
