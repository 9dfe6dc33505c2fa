"""Dispatch lag: how long a run spent on each step from due to done, and p50/p95 per schedule.

A run's steps are due -> published -> started -> finished. The first two times come from its
message headers (scheduler/protocol.py: `scheduled_for`, set by beat and backfill, and
`published_at`, set by whoever published it); the worker that runs it knows the other two. The
worker's receivers put a run's times and lags on its events (`data["dispatch"]`), which is where
the task page reads them. A run without `scheduled_for` (run now, the API) has no due step, and
only the steps whose both ends are known are given.

Per schedule, a rolling sample of the latest SAMPLES runs' lags is kept in Redis: a list per
periodic task, newest first, and an index (a sorted set) of the schedules by the time of their
latest sample. Each process's MetricsBuffer takes the lags from the events that end a run's
first attempt and writes them with its counts, at most once a second in the one pipeline it
already sends. So a run pays nothing on its own thread, and p50/p95 of a schedule cost one
LRANGE of SAMPLES short strings when read, whatever the size of the history.

What the figures mean:
- published -> started compares the publisher's clock with the worker's: they must agree (a
  negative lag says they do not). A run held back on purpose (an ETA, a countdown) is counted
  from when it was allowed to start, not from when it was published.
- Only a run's first attempt is sampled: a retry waits for its countdown, which is not dispatch.
  An attempt that retried gives its two dispatch steps and no started -> finished. Runs skipped
  by the overlap policy and dropped duplicate deliveries are not sampled.
- Samples older than SAMPLE_TTL go with their schedule's list (a deleted schedule's too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.core.formatting import percentile
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.protocol import (
    DISPATCH_LAG_INDEX_KEY,
    DISPATCH_STEPS,
    DispatchStep,
    EventType,
    dispatch_lag_key,
)

# Runs kept per schedule: p95 of 200 is the 190th, so one slow run in 20 shows.
SAMPLES = 200
# Seconds a schedule's samples outlive its latest run.
SAMPLE_TTL = 7 * 86400
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95))
# The events that end an attempt, and carry its lags.
_ENDING = frozenset({EventType.TASK_SUCCEEDED, EventType.TASK_FAILED, EventType.TASK_RETRIED})
_UNKNOWN = "-"
_NUMBERS = (int, float)
# Plain strings: the hot path's dict keys, and what JSON stores.
_DUE_TO_PUBLISHED = DispatchStep.DUE_TO_PUBLISHED.value
_PUBLISHED_TO_STARTED = DispatchStep.PUBLISHED_TO_STARTED.value
_STARTED_TO_FINISHED = DispatchStep.STARTED_TO_FINISHED.value


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 header as an aware datetime (naive: UTC); None when absent or unreadable."""
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 6)


def _iso(at: datetime) -> str:
    return (at if at.tzinfo is UTC else at.astimezone(UTC)).isoformat()


def dispatch_started(
    *, scheduled_for: object, published_at: object, eta: object, started: datetime
) -> dict[str, Any]:
    """A started run's dispatch data: its times (ISO 8601; the headers' as they were sent) and
    the lags known by then."""
    due = parse_instant(scheduled_for)
    published = parse_instant(published_at)
    lags: dict[str, float] = {}
    data: dict[str, Any] = {"started": _iso(started), "lags": lags}
    if due is not None:
        data["due"] = scheduled_for if isinstance(scheduled_for, str) else _iso(due)
    if published is not None:
        data["published"] = published_at if isinstance(published_at, str) else _iso(published)
        if due is not None:
            lags[_DUE_TO_PUBLISHED] = _seconds(published - due)
        held_until = parse_instant(eta) if eta else None
        ready = max(published, held_until) if held_until is not None else published
        lags[_PUBLISHED_TO_STARTED] = _seconds(started - ready)
    return data


def dispatch_finished(
    started: Mapping[str, Any], *, took: float, finished: datetime
) -> dict[str, Any]:
    """The dispatch data of a run that ended: `started`'s, with its end and how long it ran."""
    lags = {**started.get("lags", {}), _STARTED_TO_FINISHED: round(took, 6)}
    return {**started, "finished": _iso(finished), "lags": lags}


def lag_sample(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    """(periodic task, sample) of an event that ends a periodic run's first attempt, else None.

    A sample is the three lags in DISPATCH_STEPS order, "-" where unknown: "0.2 1.04 -".
    """
    name = payload.get("periodic_task_name")
    if not name or payload.get("type") not in _ENDING:
        return None
    data = payload.get("data")
    dispatch = data.get("dispatch") if isinstance(data, Mapping) else None
    lags = dispatch.get("lags") if isinstance(dispatch, Mapping) else None
    if not isinstance(lags, Mapping) or not lags:
        return None
    texts = [
        repr(float(value)) if isinstance(value := lags.get(step), _NUMBERS) else _UNKNOWN
        for step in DISPATCH_STEPS
    ]
    if texts.count(_UNKNOWN) == len(texts):
        return None
    return str(name), " ".join(texts)


def write_samples(pipe: Any, samples: Mapping[str, list[str]], *, now: float) -> None:
    """Add `samples` (periodic task -> samples, oldest first) to `pipe`: a few commands per
    schedule, whatever the number of samples."""
    if not samples:
        return
    for name, lines in samples.items():
        key = redis_key(dispatch_lag_key(name))
        pipe.lpush(key, *lines[-SAMPLES:])
        pipe.ltrim(key, 0, SAMPLES - 1)
        pipe.expire(key, SAMPLE_TTL)
    index = redis_key(DISPATCH_LAG_INDEX_KEY)
    pipe.zadd(index, dict.fromkeys(samples, now))
    pipe.zremrangebyscore(index, "-inf", now - SAMPLE_TTL)


@dataclass(frozen=True)
class StepLag:
    """One step's figures over a schedule's sample (None: no sampled run knew the step)."""

    samples: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class ScheduleLag:
    name: str
    runs: int  # runs in the sample
    steps: dict[str, StepLag] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "runs": self.runs,
            "steps": {
                step: {"samples": lag.samples, "p50": lag.p50, "p95": lag.p95}
                for step, lag in self.steps.items()
            },
        }


def step_lags(samples: Iterable[str]) -> tuple[int, dict[str, StepLag]]:
    """How many samples there are, and each step's p50 and p95 over those that know it."""
    values: dict[str, list[float]] = {step: [] for step in DISPATCH_STEPS}
    runs = 0
    for sample in samples:
        runs += 1
        for step, text in zip(DISPATCH_STEPS, sample.split(" "), strict=False):
            if text == _UNKNOWN:
                continue
            try:
                values[step].append(float(text))
            except ValueError:
                continue  # not ours: a hand-written entry
    steps = {
        step: StepLag(
            samples=len(found),
            **{label: percentile(found, fraction) for label, fraction in QUANTILES},
        )
        for step, found in values.items()
    }
    return runs, steps


def schedules_sampled(*, limit: int, now: float) -> tuple[list[str], int]:
    """The `limit` schedules with the latest samples (newest first), and how many have any."""
    index = redis_key(DISPATCH_LAG_INDEX_KEY)
    since = now - SAMPLE_TTL
    pipe = get_redis().pipeline(transaction=False)
    pipe.zrevrangebyscore(index, "+inf", since, start=0, num=max(limit, 0))
    pipe.zcount(index, since, "+inf")
    names, total = pipe.execute()
    return [name.decode() for name in names], int(total)


def schedule_lags(names: Iterable[str]) -> list[ScheduleLag]:
    """The figures of each schedule of `names` that has samples, in one round trip."""
    names = list(names)
    if not names:
        return []
    pipe = get_redis().pipeline(transaction=False)
    for name in names:
        pipe.lrange(redis_key(dispatch_lag_key(name)), 0, SAMPLES - 1)
    lags = []
    for name, raw in zip(names, pipe.execute(), strict=True):
        runs, steps = step_lags(item.decode() for item in raw)
        if runs:
            lags.append(ScheduleLag(name=name, runs=runs, steps=steps))
    return lags
