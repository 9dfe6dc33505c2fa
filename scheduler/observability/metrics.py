"""Prometheus metrics of the whole deployment, read at scrape time by one collector.

Tasks run in many worker processes on many machines, so no process can count them in its own
memory (prometheus_client's default). Two shared sources instead:

- Counters live in Redis hashes: every lifecycle event of every process goes through its
  publisher thread (scheduler/live/publisher.py), which adds it to a `MetricsBuffer` and writes the
  sums with one pipelined round trip at most once a second (and when it flushes or stops). So
  counting costs the task nothing on its own thread, the counters are cumulative across the
  deployment as Prometheus expects (rate() works; they survive worker restarts, and restart
  only if Redis loses its data), and a scrape reads three hashes, whatever the history size.
  The duration histogram is kept the same way, as per-bucket counts, and so are the samples
  of each schedule's dispatch lag (scheduler/observability/dispatch_lag.py), taken from the
  events that end a run.
- Everything that is a current state is read when scraped: each schedule's dispatch lag (p50
  and p95 of its sample; only the METRICS_DISPATCH_LAG_SCHEDULES schedules sampled most lately,
  so that 10,000 schedules do not make 60,000 series), the rows and the oldest row of each
  history table (an estimate and an index probe each: a table of millions of rows is never
  grouped or counted per scrape), queue depths (one pipelined LLEN per queue), which queues
  staff paused (a handful of rows), beat's heartbeat age, and the workers seen lately.

A source that cannot be read is left out of that scrape and reported by
`scheduler_metrics_source_up{source=...} 0`: a scrape never fails because Redis or the database
is down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Protocol

from django.conf import settings
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from config.queues import QUEUES
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.observability.dispatch_lag import (
    QUANTILES,
    SAMPLES,
    lag_sample,
    schedule_lags,
    schedules_sampled,
    write_samples,
)
from scheduler.observability.health import beat_heartbeat
from scheduler.observability.queues import paused_queues, queue_depths
from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.protocol import METRICS_DURATIONS_KEY as DURATIONS_KEY
from scheduler.protocol import METRICS_EVENTS_KEY as EVENTS_KEY
from scheduler.protocol import METRICS_TASKS_KEY as TASKS_KEY
from scheduler.protocol import TIMED_STATES, EventPayload, EventType

logger = logging.getLogger(__name__)

# Redis hashes (scheduler/protocol.py), under REDIS_KEY_PREFIX. Fields are "<label>\t<label>";
# tabs never occur in task names or event types.
_SEP = "\t"

# Seconds; the queues' time limits go from 10 s to 15 min (config/queues.py).
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
)
FLUSH_INTERVAL = 1.0  # seconds between writes of a process's counts to Redis


def _bucket(duration: float) -> str:
    for bound in DURATION_BUCKETS:
        if duration <= bound:
            return repr(bound)
    return "+Inf"


class MetricsBuffer:
    """Counts of one process's published events, written to Redis in one pipeline."""

    def __init__(self, *, interval: float = FLUSH_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._events: Counter[str] = Counter()
        self._tasks: Counter[str] = Counter()
        self._durations: Counter[str] = Counter()
        self._duration_sums: defaultdict[str, float] = defaultdict(float)
        # periodic task -> dispatch lag samples, oldest first (dispatch_lag.py).
        self._lags: defaultdict[str, list[str]] = defaultdict(list)
        self._since: float | None = None  # when the oldest unwritten count was added
        self._failing = False  # warn once per outage, not once a second

    def add(self, payloads: Iterable[EventPayload], *, delivered: bool) -> None:
        outcome = "published" if delivered else "failed"
        with self._lock:
            for payload in payloads:
                event_type = str(payload.get("type") or "")
                self._events[f"{outcome}{_SEP}{event_type}"] += 1
                sample = lag_sample(payload)
                if sample is not None:
                    self._lags[sample[0]].append(sample[1])
                task_name = str(payload.get("task_name") or "")
                state = str(payload.get("state") or "")
                if not event_type.startswith("task.") or not task_name or not state:
                    continue
                if event_type == EventType.DEAD_LETTER:
                    continue  # the run's task.failed counted it already
                data = payload.get("data")
                if isinstance(data, dict) and "requested_by" in data:
                    continue  # staff's revoke, shown at once; the worker's own event counts it
                self._tasks[f"{state}{_SEP}{task_name}"] += 1
                duration = payload.get("duration")
                if state in TIMED_STATES and isinstance(duration, int | float):
                    self._durations[f"{_bucket(duration)}{_SEP}{task_name}"] += 1
                    self._durations[f"count{_SEP}{task_name}"] += 1
                    self._duration_sums[f"sum{_SEP}{task_name}"] += float(duration)
            if self._since is None and self._events:
                self._since = time.monotonic()

    def wait(self) -> float | None:
        """Seconds until the counts are due to be written; None when there are none."""
        with self._lock:
            if self._since is None:
                return None
            return max(0.0, self._since + self.interval - time.monotonic())

    def due(self) -> bool:
        remaining = self.wait()
        return remaining is not None and remaining <= 0

    def flush(self) -> None:
        """Add the counts to the Redis hashes; on failure they are kept for the next try."""
        with self._lock:
            if self._since is None:
                return
            events, tasks = dict(self._events), dict(self._tasks)
            durations, sums = dict(self._durations), dict(self._duration_sums)
            lags = dict(self._lags)
            self._events, self._tasks = Counter(), Counter()
            self._durations, self._duration_sums = Counter(), defaultdict(float)
            self._lags = defaultdict(list)
            self._since = None
        try:
            pipe = get_redis().pipeline(transaction=False)
            for key, counts in (
                (EVENTS_KEY, events),
                (TASKS_KEY, tasks),
                (DURATIONS_KEY, durations),
            ):
                for field, count in counts.items():
                    pipe.hincrby(redis_key(key), field, count)
            for field, total in sums.items():
                pipe.hincrbyfloat(redis_key(DURATIONS_KEY), field, total)
            write_samples(pipe, lags, now=time.time())
            pipe.execute()
        except Exception as exc:
            # Redis down: keep the counts (bounded: one counter per label set) and retry later.
            if not self._failing:
                logger.warning("could not write metrics to Redis (will retry): %s", exc)
            self._failing = True
            with self._lock:
                self._events.update(events)
                self._tasks.update(tasks)
                self._durations.update(durations)
                for field, total in sums.items():
                    self._duration_sums[field] += total
                for name, samples in lags.items():
                    # Bounded like the counts: no more than a schedule's list keeps.
                    kept = self._lags[name]
                    kept[:0] = samples
                    del kept[: max(0, len(kept) - SAMPLES)]
                if self._since is None:
                    self._since = time.monotonic()
            return
        self._failing = False


def _hash(name: str) -> dict[str, str]:
    raw: dict[bytes, bytes] = get_redis().hgetall(redis_key(name))  # type: ignore[assignment]
    return {field.decode(): value.decode() for field, value in raw.items()}


def _split(field: str) -> tuple[str, str]:
    head, _, tail = field.partition(_SEP)
    return head, tail


class HistoryTable(Protocol):
    """One growing table as the history gauges read it (services.retention's `RetentionRow`)."""

    @property
    def label(self) -> str: ...
    @property
    def rows(self) -> int: ...
    @property
    def oldest(self) -> datetime | None: ...


class SchedulerCollector(Collector):
    """Reads every metric when scraped (module docstring).

    `history` lists the growing tables (retention's overview, which the interface serving
    `/metrics` passes in: observability sits below the services that own retention).
    """

    def __init__(self, history: Callable[[], Iterable[HistoryTable]] | None = None) -> None:
        self._history = history

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "scheduler_metrics_source_up",
            "Whether this scrape could read the source (0: its metrics are missing).",
            labels=["source"],
        )
        for source, read in (("redis", self._from_redis), ("database", self._from_database)):
            try:
                families = list(read())
            except Exception as exc:
                logger.warning("metrics: could not read the %s: %s", source, exc)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _from_redis(self) -> Iterator[Metric]:
        tasks = CounterMetricFamily(
            "scheduler_tasks",
            "Task lifecycle events, by task and the state they moved it to "
            "(PENDING = queued, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, SKIPPED, BUFFERED).",
            labels=["task_name", "state"],
        )
        for field, value in sorted(_hash(TASKS_KEY).items()):
            state, task_name = _split(field)
            tasks.add_metric([task_name, state], float(value))
        yield tasks

        yield self._durations(_hash(DURATIONS_KEY))

        published = CounterMetricFamily(
            "scheduler_events_published",
            "Events sent to the channel layer (dashboard, websocket clients, waiting API calls).",
            labels=["type"],
        )
        failed = CounterMetricFamily(
            "scheduler_events_failed",
            "Events that could not be sent to the channel layer (still stored in the log).",
            labels=["type"],
        )
        for field, value in sorted(_hash(EVENTS_KEY).items()):
            outcome, event_type = _split(field)
            (published if outcome == "published" else failed).add_metric([event_type], float(value))
        yield published
        yield failed

        depths = GaugeMetricFamily(
            "scheduler_queue_depth", "Messages waiting on the broker, by queue.", labels=["queue"]
        )
        for queue, depth in queue_depths().items():
            depths.add_metric([queue], depth)
        yield depths

        yield self._dispatch_lag()

        heartbeat = beat_heartbeat()
        yield GaugeMetricFamily(
            "scheduler_beat_heartbeat_age_seconds",
            "Seconds since beat last recorded its heartbeat (+Inf: never).",
            value=math.inf if heartbeat is None else max(0.0, time.time() - heartbeat["at"]),
        )
        window = settings.WORKER_HEALTH_WINDOW
        yield GaugeMetricFamily(
            "scheduler_workers_online",
            f"Workers that sent a heartbeat in the last {window} s (WORKER_HEALTH_WINDOW).",
            value=len(workers_seen_within(window)),
        )

    def _durations(self, fields: dict[str, str]) -> HistogramMetricFamily:
        histogram = HistogramMetricFamily(
            "scheduler_task_duration_seconds",
            "How long finished runs took (succeeded, failed or retried), by task.",
            labels=["task_name"],
        )
        per_task: dict[str, dict[str, float]] = {}
        for field, value in fields.items():
            name, task_name = _split(field)
            per_task.setdefault(task_name, {})[name] = float(value)
        bounds = [repr(bound) for bound in DURATION_BUCKETS]
        for task_name, values in sorted(per_task.items()):
            buckets: list[tuple[str, float]] = []
            running = 0.0
            for bound in [*bounds, "+Inf"]:
                running += values.get(bound, 0.0)
                buckets.append((bound, running))
            histogram.add_metric([task_name], buckets, sum_value=values.get("sum", 0.0))
        return histogram

    def _dispatch_lag(self) -> GaugeMetricFamily:
        limit = settings.METRICS_DISPATCH_LAG_SCHEDULES
        gauge = GaugeMetricFamily(
            "scheduler_dispatch_lag_seconds",
            "p50 and p95 of each step of a schedule's latest runs (due_to_published, "
            "published_to_started, started_to_finished), for the "
            f"{limit} schedules run most lately (METRICS_DISPATCH_LAG_SCHEDULES).",
            labels=["schedule", "step", "quantile"],
        )
        names, _ = schedules_sampled(limit=limit, now=time.time())
        for lag in sorted(schedule_lags(names), key=lambda lag: lag.name):
            for step, figures in lag.steps.items():
                for label, fraction in QUANTILES:
                    value = getattr(figures, label)
                    if value is not None:
                        gauge.add_metric([lag.name, step, repr(fraction)], value)
        return gauge

    def _from_database(self) -> Iterator[Metric]:
        paused = GaugeMetricFamily(
            "scheduler_queue_paused",
            "1 while staff have a queue paused (no worker consumes it), else 0; by queue.",
            labels=["queue"],
        )
        stopped = paused_queues()
        for queue in QUEUES:
            paused.add_metric([queue], 1 if queue in stopped else 0)
        yield paused
        if self._history is None:
            return
        rows = GaugeMetricFamily(
            "scheduler_history_rows",
            "Rows of each table that grows with the history (results, events, audit, ...); "
            "an estimate on large tables, never a count of millions of rows per scrape.",
            labels=["table"],
        )
        oldest = GaugeMetricFamily(
            "scheduler_history_oldest_timestamp_seconds",
            "When the oldest row of each history table was written (Unix time; none: empty). "
            "Retention keeps it within the table's setting.",
            labels=["table"],
        )
        for table in self._history():
            rows.add_metric([table.label], table.rows)
            if table.oldest is not None:
                oldest.add_metric([table.label], table.oldest.timestamp())
        yield rows
        yield oldest


def metrics_registry(
    *, history: Callable[[], Iterable[HistoryTable]] | None = None
) -> CollectorRegistry:
    """A registry of our collector only: per-process metrics mean nothing for a deployment."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SchedulerCollector(history))
    return registry
