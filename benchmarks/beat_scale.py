"""Beat at scale: our scheduler (scheduler/beat/scheduler.py) vs django-celery-beat's
DatabaseScheduler.

Both run in this process, on the same database, against the same Redis broker, for each size
of --rows (default 10k and 50k PeriodicTask rows; half interval schedules, half crontabs with
hour="*", sharing a few dozen schedule rows as an admin's tasks do; each with its
ScheduleOptions row, as the services write them, with the schedule semantics on: a run limit
beat counts down, a catch-up window, and jitter on the crontabs). Every row ran at creation
(last_run_at = now) and its next run is at least 30 minutes away, so nothing is due unless
made due here.
The process is set up as `celery beat` sets one up (the `beat_init` signal: task events are
written in batches by the publisher thread). Per size:

steady tick   the cost of one tick with nothing due, median and p90 of --ticks ticks after
              loading every row. Stock: Celery's `Scheduler.tick()`, which reads the
              `schedule` property (django-celery-beat's change-marker query) and compares the
              whole schedule with the previous one (`schedules_equal`) on every tick; at most
              --stock-seconds of ticks. Ours: `tick_once()` with its once-a-second marker query
              forced on every tick (beat ticks about once a second, so each real tick does it).
              Goal: stock / ours >= 20. Also timed: ours' comparison of every row with what
              it holds (every 5 minutes, and when the change marker moves without a notice),
              which goes on over ticks of about 25 ms: its longest tick and its whole time.
burst         1,000 interval rows made due at once (last_run_at a month ago), then the time to
              publish all of them to the broker; loading them is not timed. Ours: the running
              beat reloads the rows from a notice (they move to another interval row too: a
              reload never moves back the last run of an entry whose schedule is the same, so
              that a stale save cannot repeat a run), then `tick_once()` until 1,000 are
              published: as when they come due by the clock, each is popped off the heap,
              found due, recorded and published, in batches whose messages go to Redis in
              one pipeline (median of --burst-rounds). Stock: a new scheduler that read the
              rows and built its heap (what its first tick does), then `tick()` (one due entry
              per call) until 1,000 are published or --stock-burst-seconds pass (its rate is
              steady: published / time). Messages counted by a `before_task_publish` receiver
              and checked against what the queues hold (purged after). Goals: ours / stock >=
              10, and ours >= 2,000/s (2.5x celery-redbeat's about 800/s).
edit -> used  our beat ticking in a thread (`tick()`, which waits on the change notices);
              --edits times a row's schedule is changed through `schedule_update`, and the
              time from its commit until the beat's in-memory entry has the new schedule is
              measured (polled every ms). Goal: p99 <= 1 s.
reload        `apply_changes(Changes(tasks={pk}))`, the incremental reload of one row.
              Goal: p99 <= 10 ms.
memory        resident memory of a fresh process that set Django up and loaded every row
              (this script with --measure-rss ours|stock): after loading, what loading added
              ("RSS of rows"), and its peak.

"Keeps up" (printed for each size, asked of 100k): ours' tick p90 under 100 ms (a tenth of
its one-second tick) and its burst rate at least 2,000/s (GOAL_BURST_RATE: 2.5x
celery-redbeat's 800/s, by pipelining the publishes); a NOTE is printed when a tick of its
comparison of every row takes longer than 100 ms.

--only burst measures the bursts alone (ours' and stock's, on --rows loaded rows): a quicker
loop while working on publishing; it prints the burst figures and writes no JSON.

Writes benchmarks/results/beat_scale.json (beat_scale-postgresql.json on PostgreSQL).

    .venv/bin/python benchmarks/beat_scale.py [--rows 10000,50000] [--ticks 50] [--edits 50]
    .venv/bin/python benchmarks/beat_scale.py --rows 10000,50000,100000
    .venv/bin/python benchmarks/beat_scale.py --rows 10000 --only burst
    BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432 .venv/bin/python benchmarks/beat_scale.py
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from _harness import database_vendor, environment, percentile, write_result

BURST = 1000
TASK = "scheduler.ping"
GOAL_TICK_RATIO = 20.0
GOAL_BURST_RATIO = 10.0
REDBEAT_RATE = 800.0
# The burst rate "keeps up" asks of ours: 2.5x celery-redbeat's (publishes pipelined).
GOAL_BURST_RATE = 2000.0
GOAL_EDIT_P99_MS = 1000.0
GOAL_RELOAD_MS = 10.0
KEEP_UP_TICK_MS = 100.0
# Intervals a realistic admin reuses; the shortest is an hour, so none comes due meanwhile.
INTERVALS = [(1, "hours"), (2, "hours"), (3, "hours"), (4, "hours"), (6, "hours")]
INTERVALS += [(8, "hours"), (12, "hours"), (1, "days")]
# Crontab rows: `minute=<m> hour="*"` for 25 minutes starting 30 minutes after creation.
CRONTAB_MINUTES = 25
CRONTAB_AHEAD = 30
# Upper bounds of every wait.
OURS_BURST_TIMEOUT = 60.0
EDIT_TIMEOUT = 5.0
RSS_TIMEOUT = 900.0
MB = 1024 * 1024
# The interval rows the burst's rows are moved to (one they are not on yet).
BURST_INTERVAL_DAYS = (7, 14)
# The schedule semantics every row has (none changes what comes due while measuring: the limit
# is far, the window longer than the burst rows are overdue, the jitter well inside the
# crontabs' 30 minutes ahead).
FEATURES_MAX_RUNS = 1_000_000
FEATURES_WINDOW = 90 * 86400
FEATURES_JITTER = 300


# --- Rows --------------------------------------------------------------------------------------


def grow_to(total: int) -> float:
    """Add periodic tasks until there are `total`; the seconds it took."""
    from django.db import connection, transaction
    from django.utils import timezone
    from django_celery_beat.models import (
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        PeriodicTasks,
    )

    from scheduler.models import ScheduleOptions

    started = time.perf_counter()
    existing = PeriodicTask.objects.count()
    now = timezone.now()
    intervals = [
        IntervalSchedule.objects.get_or_create(every=every, period=period)[0]
        for every, period in INTERVALS
    ]
    for every in BURST_INTERVAL_DAYS:  # now: creating one later moves the change marker
        IntervalSchedule.objects.get_or_create(every=every, period="days")
    first = (now.minute + CRONTAB_AHEAD) % 60
    minutes = [(first + k) % 60 for k in range(CRONTAB_MINUTES)]
    crontabs = [
        CrontabSchedule.objects.get_or_create(
            minute=str(minute),
            hour="*",
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )[0]
        for minute in minutes
    ]
    tasks: list[Any] = []
    phrases: list[str] = []
    for n in range(existing, total):
        task = PeriodicTask(
            name=f"bench-{n:06d}",
            task=TASK,
            kwargs="{}",
            queue="default",
            enabled=True,
            last_run_at=now,
        )
        if n % 2 == 0:
            interval = intervals[(n // 2) % len(intervals)]
            task.interval = interval
            phrases.append(f"every {interval.every} {interval.period}")
        else:
            crontab = crontabs[(n // 2) % len(crontabs)]
            task.crontab = crontab
            phrases.append(f"{crontab.minute} * * * *")
        tasks.append(task)
    with transaction.atomic():
        PeriodicTask.objects.bulk_create(tasks, batch_size=2000)
        assert all(task.pk for task in tasks), "bulk_create did not return primary keys"
        ScheduleOptions.objects.bulk_create(
            [
                ScheduleOptions(
                    periodic_task=task,
                    phrase=phrase,
                    timezone="UTC",
                    # The schedule semantics on (issue 19): beat counts every run down, checks
                    # the catch-up window, and waits for each crontab run's jitter.
                    catchup="latest",
                    catchup_window=FEATURES_WINDOW,
                    max_runs=FEATURES_MAX_RUNS,
                    remaining_runs=FEATURES_MAX_RUNS,
                    jitter=FEATURES_JITTER if task.crontab is not None else 0,
                )
                for task, phrase in zip(tasks, phrases, strict=True)
            ],
            batch_size=2000,
        )
    PeriodicTasks.update_changed()  # as django-celery-beat asks after a bulk change
    if connection.vendor == "postgresql":
        # As autovacuum would shortly: with the statistics of the empty tables, the planner
        # joins the whole table for every chunk beat reads (a reconcile took 2x as long).
        with connection.cursor() as cursor:
            for model in (PeriodicTask, ScheduleOptions, IntervalSchedule, CrontabSchedule):
                cursor.execute(f'ANALYZE "{model._meta.db_table}"')
    return time.perf_counter() - started


def burst_ids() -> list[int]:
    from django_celery_beat.models import PeriodicTask

    ids = list(
        PeriodicTask.objects.filter(interval__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)[:BURST]
    )
    assert len(ids) == BURST, f"only {len(ids)} interval rows"
    return ids


def make_due(ids: list[int], *, new_schedule: bool = False) -> None:
    """Last run a month ago; with `new_schedule`, on an interval row they are not on yet."""
    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    changes: dict[str, Any] = {"last_run_at": timezone.now() - timedelta(days=30)}
    if new_schedule:
        current = PeriodicTask.objects.get(pk=ids[0]).interval_id
        for every in BURST_INTERVAL_DAYS:
            interval = IntervalSchedule.objects.get(every=every, period="days")
            if interval.pk != current:
                changes["interval"] = interval
                break
    PeriodicTask.objects.filter(pk__in=ids).update(**changes)


def not_due(ids: list[int]) -> None:
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(pk__in=ids).update(last_run_at=timezone.now())


def drain_queues() -> int:
    """Empty every queue of the broker; how many messages they held."""
    from config.celery import app
    from config.queues import QUEUES

    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        return sum(int(channel.queue_purge(name) or 0) for name in QUEUES)


class PublishCounter:
    """Counts the messages published in this process (`before_task_publish`)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, **kwargs: Any) -> None:
        self.count += 1


def flush_events() -> None:
    from scheduler.live.publisher import publisher

    publisher().flush(timeout=60)


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    values = [value * 1000 for value in seconds]
    return {
        "count": len(values),
        "median_ms": round(statistics.median(values), 3),
        "p90_ms": round(percentile(values, 90), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
    }


# --- Ours --------------------------------------------------------------------------------------


class BeatThread(threading.Thread):
    """Our beat as `celery beat` runs it: `tick()` in a loop (it waits on the change notices)."""

    def __init__(self, scheduler: Any) -> None:
        super().__init__(name="bench-beat", daemon=True)
        self.scheduler = scheduler
        self.stopping = threading.Event()
        self.ticks = 0
        self.full_reloads = 0
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from django.db import connections

        try:
            while not self.stopping.is_set():
                self.scheduler.tick()
                self.ticks += 1
                self.full_reloads += self.scheduler.stats.full_reloads
                self.published += self.scheduler.stats.published
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=15)
        if self.is_alive():
            raise SystemExit("the beat thread did not stop within 15 s")


def _edit_targets(count: int) -> list[tuple[int, str]]:
    """`count` crontab rows spread over the table (those not edited by an earlier size)."""
    from django_celery_beat.models import PeriodicTask

    rows = list(
        PeriodicTask.objects.filter(crontab__isnull=False).order_by("pk").values_list("pk", "name")
    )
    stride = max(len(rows) // count, 1)
    return rows[::stride][:count]


def _now_into(marks: list[float]) -> None:
    marks.append(time.perf_counter())


def measure_edits(scheduler: Any, edits: int) -> dict[str, Any]:
    """Edit -> the beat thread's entry has the new schedule; after 3 edits of warm-up."""
    from django.db import transaction

    from scheduler.services import schedule_update

    thread = BeatThread(scheduler)
    thread.start()
    latencies: list[float] = []
    calls: list[float] = []
    try:
        # Subscribed, then its first marker check after subscribing (it compares every row
        # once then: changes made while it was not subscribed sent notices it did not hear).
        deadline = time.monotonic() + 60
        while scheduler._subscription is None or thread.ticks < 2:
            if time.monotonic() > deadline or thread.error is not None:
                raise SystemExit(f"the beat thread did not start: {thread.error!r}")
            time.sleep(0.01)
        time.sleep(1.5)
        reloads_before = thread.full_reloads
        for n, (pk, name) in enumerate(_edit_targets(edits + 3)):
            phrase = f"every {45 + n % 15} minutes"
            old = scheduler.entries.get(pk)
            committed: list[float] = []
            started = time.perf_counter()
            with transaction.atomic():
                # Registered first: runs right after COMMIT, before the notice is sent.
                transaction.on_commit(partial(_now_into, committed))
                row = schedule_update(name=name, schedule=phrase)
            returned = time.perf_counter()
            while True:
                entry = scheduler.entries.get(pk)
                if (
                    entry is not None
                    and entry is not old
                    and entry.kind == "interval"
                    and entry.schedule_id == row.interval_id
                ):
                    seen = time.perf_counter()
                    break
                if time.perf_counter() - committed[0] > EDIT_TIMEOUT:
                    raise SystemExit(f"edit of {name} not used by beat after {EDIT_TIMEOUT} s")
                if thread.error is not None:
                    raise SystemExit(f"the beat thread failed: {thread.error!r}")
                time.sleep(0.001)
            if n >= 3:
                latencies.append(seen - committed[0])
                calls.append(returned - started)
        full_reloads = thread.full_reloads - reloads_before
    finally:
        thread.stop()
    if thread.error is not None:
        raise SystemExit(f"the beat thread failed: {thread.error!r}")
    return {
        "latency": summary_ms(latencies),
        "schedule_update_call": summary_ms(calls),
        "full_reloads_meanwhile": full_reloads,
        "published_meanwhile": thread.published,
    }


def measure_reloads(scheduler: Any, count: int) -> dict[str, Any]:
    from django_celery_beat.models import PeriodicTask

    from scheduler.beat.changes import Changes

    ids = list(PeriodicTask.objects.order_by("pk").values_list("pk", flat=True))
    stride = max(len(ids) // count, 1)
    times: list[float] = []
    for pk in ids[::stride][:count]:
        started = time.perf_counter()
        scheduler.apply_changes(Changes(tasks={pk}))
        times.append(time.perf_counter() - started)
        assert pk in scheduler.entries
    return summary_ms(times)


def burst_round(scheduler: Any, ids: list[int], counter: PublishCounter) -> dict[str, Any]:
    from scheduler.beat.changes import Changes

    # The rows' schedule changes too: a reload never moves the last run of an entry with the
    # same schedule back (a stale save must not repeat a run). Untimed, as stock's loading.
    make_due(ids, new_schedule=True)
    started = time.perf_counter()
    scheduler.apply_changes(Changes(tasks=set(ids)))
    reload_ms = (time.perf_counter() - started) * 1000
    counted = counter.count
    published, ticks_needed = 0, 0
    started = time.perf_counter()
    while published < BURST and time.perf_counter() - started < OURS_BURST_TIMEOUT:
        scheduler.tick_once()
        published += scheduler.stats.published
        ticks_needed += 1
    elapsed = time.perf_counter() - started
    in_queues = drain_queues()
    if published != BURST or counter.count - counted != BURST or in_queues != BURST:
        raise SystemExit(
            f"ours burst: published {published}, signalled {counter.count - counted}, "
            f"queued {in_queues} (expected {BURST})"
        )
    flush_events()  # the task.queued events, written by the publisher thread
    return {
        "published": published,
        "seconds": round(elapsed, 4),
        "ticks": ticks_needed,
        "tasks_per_second": round(published / elapsed, 1),
        "reload_1000_rows_ms": round(reload_ms, 3),
    }


def ours_bursts(
    scheduler: Any, ids: list[int], args: argparse.Namespace, counter: PublishCounter
) -> dict[str, Any]:
    """--burst-rounds bursts: the median round, and every round's rate."""
    rounds = [burst_round(scheduler, ids, counter) for _ in range(args.burst_rounds)]
    flush_events()
    return {
        **sorted(rounds, key=lambda r: r["tasks_per_second"])[len(rounds) // 2],
        "rounds": [r["tasks_per_second"] for r in rounds],
    }


def run_ours(rows: int, ids: list[int], args: argparse.Namespace, counter: PublishCounter) -> Any:
    from django_celery_beat.models import PeriodicTasks

    from config.celery import app
    from scheduler.beat.scheduler import DatabaseScheduler

    figures: dict[str, Any] = {}
    scheduler = DatabaseScheduler(app=app, lazy=True)
    try:
        started = time.perf_counter()
        scheduler.tick_once()
        figures["load_seconds"] = round(time.perf_counter() - started, 3)
        if not scheduler.stats.leader or len(scheduler.entries) != rows:
            raise SystemExit(
                f"ours: leader={scheduler.stats.leader}, {len(scheduler.entries)} of {rows} loaded"
            )
        if args.only == "burst":
            figures["burst"] = ours_bursts(scheduler, ids, args, counter)
            return figures
        published = scheduler.stats.published
        ticks: list[float] = []
        for _ in range(args.ticks):
            scheduler._next_sync = 0.0  # a second passed: the marker is read, as at beat's pace
            started = time.perf_counter()
            scheduler.tick_once()
            ticks.append(time.perf_counter() - started)
            published += scheduler.stats.published
        if published:
            raise SystemExit(f"ours published {published} run(s) while nothing was due")
        figures["tick"] = summary_ms(ticks)

        # A comparison of every row with what is loaded (every RECONCILE_INTERVAL, and when
        # the change marker moves with no notice: a bulk update). It goes on over as many ticks
        # as it needs, each at most about COMPARE_BUDGET: timed are its longest tick (what it
        # holds beat up for) and the whole comparison.
        longest: list[float] = []
        totals: list[float] = []
        tick_counts: list[int] = []
        for _ in range(3):
            PeriodicTasks.update_changed()
            scheduler._next_sync = 0.0
            began = time.perf_counter()
            worst, count = 0.0, 0
            while True:
                started = time.perf_counter()
                scheduler.tick_once()
                worst = max(worst, time.perf_counter() - started)
                count += 1
                if scheduler.stats.published:
                    raise SystemExit(f"ours: a comparison tick did {scheduler.stats}")
                if scheduler.stats.full_reloads:
                    break
                if count > 100_000:
                    raise SystemExit("ours: the comparison never ended")
            totals.append(time.perf_counter() - began)
            longest.append(worst)
            tick_counts.append(count)
        figures["reconcile"] = {
            **summary_ms(longest),
            "whole_comparison": summary_ms(totals),
            "ticks": int(statistics.median(tick_counts)),
        }

        figures["burst"] = ours_bursts(scheduler, ids, args, counter)

        figures["edit"] = measure_edits(scheduler, args.edits)
        figures["reload"] = measure_reloads(scheduler, args.edits)
    finally:
        scheduler.close()  # releases the leader lock
    flush_events()
    return figures


# --- Stock -------------------------------------------------------------------------------------


def _stock(app: Any) -> Any:
    from django_celery_beat.schedulers import DatabaseScheduler as StockScheduler

    return StockScheduler(app=app, lazy=True)


def _stock_close(scheduler: Any) -> None:
    # What it ran is not written back (it would be, within 3 minutes): the next phase sets the
    # rows itself, and its exit-time sync would find the database gone.
    scheduler._dirty.clear()
    scheduler._finalize.cancel()
    if "producer" in vars(scheduler):
        scheduler.producer.connection.release()


def stock_ticks(
    rows: int, args: argparse.Namespace, counter: PublishCounter
) -> tuple[float, dict[str, Any]]:
    """Stock's load (seconds) and its steady ticks."""
    from config.celery import app

    scheduler = _stock(app)
    try:
        counted = counter.count
        started = time.perf_counter()
        scheduler.tick()  # the initial read of every row, and the heap
        load_seconds = round(time.perf_counter() - started, 3)
        if len(scheduler.schedule) != rows:
            raise SystemExit(f"stock: {len(scheduler.schedule)} of {rows} loaded")
        ticks: list[float] = []
        budget = time.perf_counter() + args.stock_seconds
        while len(ticks) < args.ticks and (len(ticks) < 5 or time.perf_counter() < budget):
            started = time.perf_counter()
            scheduler.tick()
            ticks.append(time.perf_counter() - started)
        if counter.count != counted:
            raise SystemExit(f"stock published {counter.count - counted} while nothing was due")
    finally:
        _stock_close(scheduler)
    del scheduler
    gc.collect()
    return load_seconds, summary_ms(ticks)


def run_stock(rows: int, ids: list[int], args: argparse.Namespace, counter: PublishCounter) -> Any:
    from config.celery import app

    figures: dict[str, Any] = {}
    if args.only != "burst":
        figures["load_seconds"], figures["tick"] = stock_ticks(rows, args, counter)
    make_due(ids)
    scheduler = _stock(app)
    try:
        # What its first tick does, untimed: read every row, build the heap.
        scheduler.old_schedulers = copy.copy(scheduler.schedule)
        scheduler.populate_heap()
        counted = counter.count
        started = time.perf_counter()
        ticks_needed = 0
        while (
            counter.count - counted < BURST
            and time.perf_counter() - started < args.stock_burst_seconds
        ):
            scheduler.tick()
            ticks_needed += 1
        elapsed = time.perf_counter() - started
        published = counter.count - counted
        in_queues = drain_queues()
        if in_queues != published:
            raise SystemExit(f"stock burst: signalled {published}, queued {in_queues}")
        figures["burst"] = {
            "published": published,
            "seconds": round(elapsed, 4),
            "ticks": ticks_needed,
            "tasks_per_second": round(published / elapsed, 1),
            "complete": published >= BURST,
        }
    finally:
        _stock_close(scheduler)
    del scheduler
    gc.collect()
    # Not due again (for the memory processes and the next size).
    not_due(ids)
    flush_events()
    return figures


# --- Memory ------------------------------------------------------------------------------------


def measure_rss_here(which: str) -> None:
    """In a process of its own: set Django up, load every row, print the RSS as JSON."""
    import django

    django.setup()
    import psutil
    from celery.signals import beat_init
    from django_celery_beat.schedulers import DatabaseScheduler as StockScheduler

    from config.celery import app
    from scheduler.beat.scheduler import DatabaseScheduler

    beat_init.send(sender=None)
    app.loader.import_default_modules()
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.perf_counter()
    scheduler: Any
    if which == "ours":
        scheduler = DatabaseScheduler(app=app, lazy=True)
        scheduler.tick_once()
        entries = len(scheduler.entries)
        if not scheduler.stats.leader:
            raise SystemExit("ours did not lead")
    else:
        scheduler = StockScheduler(app=app, lazy=True)
        scheduler.tick()
        entries = len(scheduler.schedule)
    load = time.perf_counter() - started
    gc.collect()
    after = process.memory_info().rss
    peak = _high_water_mark()
    if which == "ours":
        scheduler.close()
    else:
        _stock_close(scheduler)
    result = {"entries": entries, "load_seconds": load, "rss": after, "base": before}
    print(json.dumps({**result, "peak": peak}))


def _high_water_mark() -> int:
    """Peak RSS of this process (VmHWM; ru_maxrss would count the parent's before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_rss(which: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure-rss", which],
        capture_output=True,
        text=True,
        timeout=RSS_TIMEOUT,
        env=dict(os.environ),
        check=False,
    )
    if completed.returncode != 0:
        print(completed.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"--measure-rss {which} failed ({completed.returncode})")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return {
        "entries": figures["entries"],
        "load_seconds": round(figures["load_seconds"], 3),
        "rss_mb": round(figures["rss"] / MB, 1),
        "rss_before_load_mb": round(figures["base"] / MB, 1),
        "rows_mb": round((figures["rss"] - figures["base"]) / MB, 1),
        "peak_rss_mb": round(figures["peak"] / MB, 1),
    }


# --- Report ------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 1) if denominator > 0 else None


def goals(size: dict[str, Any]) -> dict[str, Any]:
    stock, ours = size["stock"], size["ours"]
    tick_ratio = _ratio(stock["tick"]["median_ms"], ours["tick"]["median_ms"])
    burst_ratio = _ratio(ours["burst"]["tasks_per_second"], stock["burst"]["tasks_per_second"])
    edit_p99 = ours["edit"]["latency"]["p99_ms"]
    reload_p99 = ours["reload"]["p99_ms"]
    keeps_up = (
        ours["tick"]["p90_ms"] <= KEEP_UP_TICK_MS
        and ours["burst"]["tasks_per_second"] >= GOAL_BURST_RATE
    )
    return {
        "tick_ratio": tick_ratio,
        "tick_met": tick_ratio is not None and tick_ratio >= GOAL_TICK_RATIO,
        "burst_ratio": burst_ratio,
        "burst_met": burst_ratio is not None and burst_ratio >= GOAL_BURST_RATIO,
        "above_redbeat": ours["burst"]["tasks_per_second"] >= REDBEAT_RATE,
        "burst_rate_met": ours["burst"]["tasks_per_second"] >= GOAL_BURST_RATE,
        "edit_met": edit_p99 <= GOAL_EDIT_P99_MS,
        "reload_met": reload_p99 <= GOAL_RELOAD_MS,
        "keeps_up": keeps_up,
        # A comparison tick holds up what is due no longer than a tenth of a tick.
        "reconcile_within_a_tick": ours["reconcile"]["max_ms"] <= 100.0,
    }


def _met(value: bool) -> str:
    return "met" if value else "NOT met"


def report(vendor: str, sizes: dict[int, dict[str, Any]]) -> None:
    print(
        f"beat at scale: ours (scheduler/beat/scheduler.py) vs stock django-celery-beat, "
        f"database {vendor}, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'rows':>7} | {'stock tick ms':>13} | {'ours tick ms':>12} | {'ratio':>6} | "
        f"{'stock burst/s':>13} | {'ours burst/s':>12} | {'ratio':>6} | "
        f"{'edit p50/p99 ms':>15} | {'reload ms':>9} | {'RSS stock/ours MB':>17}"
    )
    print(header)
    print("-" * len(header))
    for rows, size in sizes.items():
        stock, ours, goal = size["stock"], size["ours"], size["goals"]
        edit = ours["edit"]["latency"]
        rss = f"{size['rss']['stock']['rss_mb']:g}/{size['rss']['ours']['rss_mb']:g}"
        burst = f"{stock['burst']['tasks_per_second']:g}"
        print(
            f"{rows:>7} | {stock['tick']['median_ms']:>13.2f} | {ours['tick']['median_ms']:>12.3f}"
            f" | {goal['tick_ratio']!s:>6} | {burst:>13} | "
            f"{ours['burst']['tasks_per_second']:>12g} | {goal['burst_ratio']!s:>6} | "
            f"{edit['median_ms']:>6.1f}/{edit['p99_ms']:<8.1f} | "
            f"{ours['reload']['median_ms']:>9.3f} | {rss:>17}"
        )
    print()
    print(
        f"{'rows':>7} | {'load s stock/ours':>17} | {'tick p90 ms stock/ours':>22} | "
        f"{'compare ms tick/all':>19} | "
        f"{'stock burst':>18} | {'ours burst':>15} | {'reload p99 ms':>13} | "
        f"{'RSS of rows stock/ours MB':>25}"
    )
    for rows, size in sizes.items():
        stock, ours, rss = size["stock"], size["ours"], size["rss"]
        stock_burst = f"{stock['burst']['published']} in {stock['burst']['seconds']:.1f} s"
        compare = ours["reconcile"]
        compared = f"{compare['max_ms']:.1f}/{compare['whole_comparison']['median_ms']:.0f}"
        ours_burst = f"{ours['burst']['published']} in {ours['burst']['seconds']:.3f} s"
        print(
            f"{rows:>7} | {stock['load_seconds']:>8.2f}/{ours['load_seconds']:<8.2f} | "
            f"{stock['tick']['p90_ms']:>11.2f}/{ours['tick']['p90_ms']:<10.3f} | "
            f"{compared:>19} | "
            f"{stock_burst:>18} | {ours_burst:>15} | {ours['reload']['p99_ms']:>13.3f} | "
            f"{rss['stock']['rows_mb']:>12g}/{rss['ours']['rows_mb']:<12g}"
        )
    print()
    for rows, size in sizes.items():
        goal, ours = size["goals"], size["ours"]
        print(
            f"{rows} rows: tick stock/ours {goal['tick_ratio']}x (goal >= {GOAL_TICK_RATIO:g}x): "
            f"{_met(goal['tick_met'])}; burst ours/stock {goal['burst_ratio']}x "
            f"(goal >= {GOAL_BURST_RATIO:g}x): {_met(goal['burst_met'])}, "
            f"{'above' if goal['above_redbeat'] else 'NOT above'} redbeat's "
            f"~{REDBEAT_RATE:g}/s, {ours['burst']['tasks_per_second']:g}/s (goal >= "
            f"{GOAL_BURST_RATE:g}/s): {_met(goal['burst_rate_met'])}; "
            f"edit p99 {ours['edit']['latency']['p99_ms']:.1f} ms "
            f"(goal <= {GOAL_EDIT_P99_MS:g}): {_met(goal['edit_met'])}; reload p99 "
            f"{ours['reload']['p99_ms']:.3f} ms (goal <= {GOAL_RELOAD_MS:g}): "
            f"{_met(goal['reload_met'])}; keeps up: {'yes' if goal['keeps_up'] else 'NO'} "
            f"(tick p90 {ours['tick']['p90_ms']:.2f} ms of a 1000 ms tick, "
            f"burst {ours['burst']['tasks_per_second']:g}/s of the {GOAL_BURST_RATE:g}/s "
            f"asked; comparing every row, every 300 s: "
            f"{ours['reconcile']['whole_comparison']['median_ms']:.0f} ms over "
            f"{ours['reconcile']['ticks']} ticks of at most {ours['reconcile']['max_ms']:.0f} ms)"
        )
        if not goal["reconcile_within_a_tick"]:
            print(
                f"  NOTE {rows} rows: a comparison tick held beat up for "
                f"{ours['reconcile']['max_ms']:.0f} ms: runs due meanwhile waited that long"
            )


def report_burst(vendor: str, sizes: dict[int, dict[str, Any]]) -> None:
    """--only burst: the burst figures alone (the rest of "keeps up" was not measured)."""
    print(f"beat burst: ours vs stock django-celery-beat, database {vendor}, {os.cpu_count()} CPUs")
    for rows, size in sizes.items():
        ours, stock = size["ours"]["burst"], size["stock"]["burst"]
        rate = ours["tasks_per_second"]
        ratio = _ratio(rate, stock["tasks_per_second"])
        print(
            f"{rows} rows: ours {rate:g}/s (rounds {ours['rounds']}, {ours['ticks']} ticks), "
            f"stock {stock['tasks_per_second']:g}/s, ours/stock {ratio}x "
            f"(goal >= {GOAL_BURST_RATIO:g}x); burst {rate:g}/s "
            f"{'meets' if rate >= GOAL_BURST_RATE else 'does NOT meet'} the goal of "
            f"{GOAL_BURST_RATE:g}/s ({GOAL_BURST_RATE / REDBEAT_RATE:g}x redbeat's "
            f"~{REDBEAT_RATE:g}/s)"
        )


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--rows", default="10000,50000", help="comma-separated table sizes, measured in order"
    )
    parser.add_argument("--ticks", type=int, default=50, help="steady ticks timed per scheduler")
    parser.add_argument("--edits", type=int, default=50, help="edits timed, and reloads")
    parser.add_argument(
        "--stock-seconds", type=float, default=20.0, help="at most this long of stock's ticks"
    )
    parser.add_argument(
        "--stock-burst-seconds",
        type=float,
        default=30.0,
        help="stock's burst stops after this long (its rate is published / time)",
    )
    parser.add_argument(
        "--burst-rounds", type=int, default=3, help="ours' bursts (the median is reported)"
    )
    parser.add_argument(
        "--only",
        choices=["burst"],
        help="measure only this part (the rows are still loaded; nothing is written)",
    )
    parser.add_argument("--measure-rss", choices=["ours", "stock"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_rss:
        measure_rss_here(args.measure_rss)
        return
    sizes_wanted = sorted({int(value) for value in args.rows.split(",") if value.strip()})
    if not sizes_wanted or sizes_wanted[0] < 2 * BURST:
        raise SystemExit(f"--rows: each size at least {2 * BURST}")
    sizes: dict[int, dict[str, Any]] = {}
    with environment():
        from celery.signals import beat_init, before_task_publish

        from config.celery import app
        from scheduler.beat import scheduler as beat
        from scheduler.core.redis_connection import get_redis, redis_key
        from scheduler.live.publisher import publisher

        vendor = database_vendor()
        beat_init.send(sender=None)  # as `celery beat` starts: events written in batches
        app.loader.import_default_modules()
        counter = PublishCounter()
        before_task_publish.connect(counter, weak=False)
        try:
            for rows in sizes_wanted:
                created = grow_to(rows)
                print(f"{rows} rows ready ({created:.1f} s); measuring...", flush=True)
                get_redis().delete(redis_key(beat.LEADER_KEY))
                ids = burst_ids()
                size: dict[str, Any] = {"rows": rows, "create_seconds": round(created, 1)}
                size["ours"] = run_ours(rows, ids, args, counter)
                size["stock"] = run_stock(rows, ids, args, counter)
                if args.only != "burst":
                    size["rss"] = {which: measure_rss(which) for which in ("stock", "ours")}
                    size["goals"] = goals(size)
                sizes[rows] = size
        finally:
            before_task_publish.disconnect(counter)
            publisher().stop()
    if args.only == "burst":
        report_burst(vendor, sizes)
        return
    report(vendor, sizes)
    name = "beat_scale" if vendor == "sqlite" else f"beat_scale-{vendor}"
    path = write_result(
        name,
        {
            "database": vendor,
            "goals": {
                "tick_ratio": GOAL_TICK_RATIO,
                "burst_ratio": GOAL_BURST_RATIO,
                "redbeat_tasks_per_second": REDBEAT_RATE,
                "burst_tasks_per_second": GOAL_BURST_RATE,
                "edit_p99_ms": GOAL_EDIT_P99_MS,
                "reload_p99_ms": GOAL_RELOAD_MS,
                "keep_up_tick_p90_ms": KEEP_UP_TICK_MS,
            },
            "sizes": {str(rows): size for rows, size in sizes.items()},
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
