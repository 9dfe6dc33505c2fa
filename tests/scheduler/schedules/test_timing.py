"""When a schedule runs (scheduler/schedules/timing.py), against a simulated clock: on time and
missed runs under each catch-up mode and window, start and end times, run limits, jitter and
one-offs. Beat and every display follow these answers (tests/scheduler/beat/test_shown_is_made.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.schedules.parsing import CrontabSpec, IntervalSpec, ParsedSchedule
from scheduler.schedules.timing import (
    GRACE,
    Plan,
    Timing,
    fire_time,
    jitter_offset,
    plan,
    run_id,
    upcoming,
)

T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # a Monday
HOURLY = ParsedSchedule(
    kind="interval",
    timezone="UTC",
    description="",
    interval=IntervalSpec(every=1, period="hours"),
)
AT_NINE = ParsedSchedule(
    kind="crontab",
    timezone="Europe/Paris",
    description="",
    crontab=CrontabSpec(minute="0", hour="9", day_of_week="*", day_of_month="*", month_of_year="*"),
)


def hourly(**fields: object) -> Timing:
    return replace(Timing(key=7, schedule=HOURLY, anchor=T0), **fields)  # type: ignore[arg-type]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# (what, timing, now, the plan)
CASES = [
    ("not due yet: wait for it", hourly(), T0 + hours(0.5), Plan(wait_until=T0 + hours(1))),
    ("due: run it", hourly(), T0 + hours(1), Plan(runs=(T0 + hours(1),), anchor=T0 + hours(1))),
    (
        "late within the grace: on time",
        hourly(),
        T0 + hours(1) + GRACE,
        Plan(runs=(T0 + hours(1),), anchor=T0 + hours(1)),
    ),
    (
        "3 missed, none: none made, moved past them",
        hourly(catchup="none"),
        T0 + hours(3.5),
        Plan(skipped=3, anchor=T0 + hours(3)),
    ),
    (
        "3 missed, latest: the latest once",
        hourly(catchup="latest"),
        T0 + hours(3.5),
        Plan(runs=(T0 + hours(3),), skipped=2, anchor=T0 + hours(3)),
    ),
    (
        "3 missed, all: each, in order",
        hourly(catchup="all"),
        T0 + hours(3.5),
        Plan(runs=(T0 + hours(1), T0 + hours(2), T0 + hours(3)), anchor=T0 + hours(3)),
    ),
    (
        "all within a 2 h window: only the 2 due in it",
        hourly(catchup="all", catchup_window=7200),
        T0 + hours(3.5),
        Plan(runs=(T0 + hours(2), T0 + hours(3)), skipped=1, anchor=T0 + hours(3)),
    ),
    (
        "latest, but older than its 10 min window: none",
        hourly(catchup="latest", catchup_window=600),
        T0 + hours(3.5),
        Plan(skipped=3, anchor=T0 + hours(3)),
    ),
    (
        "missed ones and one on time, none: the one on time only",
        hourly(catchup="none"),
        T0 + hours(3) + timedelta(seconds=10),
        Plan(runs=(T0 + hours(3),), skipped=2, anchor=T0 + hours(3)),
    ),
    (
        "all, limited to 2 remaining runs: the first 2",
        hourly(catchup="all", remaining=2),
        T0 + hours(3.5),
        Plan(runs=(T0 + hours(1), T0 + hours(2)), skipped=1, anchor=T0 + hours(3)),
    ),
    (
        "no runs left: finished",
        hourly(remaining=0),
        T0,
        Plan(finished="it made its last run (max runs)"),
    ),
    (
        "next due at its end: wait for the end",
        hourly(end=T0 + hours(1)),
        T0 + hours(0.5),
        Plan(wait_until=T0 + hours(1)),
    ),
    (
        "end passed: finished, missed runs before it not made",
        hourly(end=T0 + hours(2)),
        T0 + hours(3),
        Plan(finished=f"its end time passed ({(T0 + hours(2)).isoformat()})"),
    ),
    (
        "never run, with a start time: first run at the start",
        hourly(ran=False, start=T0 + hours(5)),
        T0 + hours(5),
        Plan(runs=(T0 + hours(5),), anchor=T0 + hours(5)),
    ),
    (
        "never run: due one step after it was saved",
        hourly(ran=False),
        T0 + hours(0.9),
        Plan(wait_until=T0 + hours(1)),
    ),
    (
        "cron, before its start: first run at or after the start",
        Timing(key=1, schedule=AT_NINE, anchor=T0, start=T0 + timedelta(days=2)),
        T0,
        # 9:00 in Paris is 8:00 UTC in January.
        Plan(wait_until=datetime(2027, 1, 7, 8, 0, tzinfo=UTC)),
    ),
]


@pytest.mark.parametrize(("what", "timing", "now", "expected"), CASES, ids=[c[0] for c in CASES])
def test_plan(what: str, timing: Timing, now: datetime, expected: Plan) -> None:
    assert plan(timing, now) == expected


def test_a_late_one_off_runs_whatever_the_catch_up():
    moment = T0 + hours(1)
    one_off = Timing(
        key=3,
        schedule=ParsedSchedule(kind="clocked", timezone="UTC", description="", clocked=moment),
        anchor=T0,
        ran=False,
        catchup="none",
    )
    assert plan(one_off, T0 + hours(30)).runs == (moment,)
    assert plan(replace(one_off, ran=True), T0 + hours(30)).finished == "one-off task already ran"


def test_jitter_is_a_function_of_the_run_within_its_bounds():
    timing = hourly(jitter=600)
    offsets = [jitter_offset(timing, T0 + hours(k)) for k in range(200)]
    assert all(0 <= offset <= 600 for offset in offsets)
    assert len(set(offsets)) > 100  # spread, not one delay for every run
    # Another process computing it agrees (a pure function of the schedule's id and the run).
    assert offsets == [jitter_offset(hourly(jitter=600), T0 + hours(k)) for k in range(200)]
    assert jitter_offset(replace(timing, key=8), T0 + hours(1)) != jitter_offset(
        timing, T0 + hours(1)
    ) or jitter_offset(replace(timing, key=8), T0 + hours(2)) != jitter_offset(
        timing, T0 + hours(2)
    )
    # Beat waits for a run's jitter; its due time stays the run's name and the next's anchor.
    due = T0 + hours(1)
    assert plan(timing, due).wait_until == fire_time(timing, due)
    assert plan(timing, fire_time(timing, due)).runs == (due,)


def test_a_run_due_before_the_end_whose_jitter_takes_it_past_the_end_is_still_made():
    due = T0 + hours(1)
    # Its end a second after the run's due time; the run's jitter sends it out later than that.
    timing = next(
        candidate
        for key in range(100)
        if jitter_offset(candidate := hourly(key=key, jitter=45), due) > 1
    )
    timing = replace(timing, end=due + timedelta(seconds=1))
    fire = fire_time(timing, due)

    shown = upcoming(timing, T0 + hours(0.5), count=5)
    assert [(run.due, run.at) for run in shown] == [(due, fire)]
    assert plan(timing, T0 + hours(0.5)).wait_until == fire
    assert plan(timing, fire) == Plan(runs=(due,), anchor=due)  # made, as shown
    # Late past its grace (beat was down), or once made: the end time has passed.
    assert plan(timing, fire + GRACE + timedelta(seconds=1)).finished
    assert plan(replace(timing, anchor=due, ran=True), fire).finished


def test_the_runs_to_come_honour_the_limit_and_the_end():
    shown = upcoming(hourly(remaining=3), T0, count=10)
    assert [run.due for run in shown] == [T0 + hours(k) for k in (1, 2, 3)]
    shown = upcoming(hourly(end=T0 + hours(2.5)), T0, count=10)
    assert [run.due for run in shown] == [T0 + hours(1), T0 + hours(2)]
    # A catch-up run goes out now; the next on its due time.
    shown = upcoming(hourly(catchup="latest"), T0 + hours(3.5), count=2)
    assert [(run.due, run.at) for run in shown] == [
        (T0 + hours(3), T0 + hours(3.5)),
        (T0 + hours(4), T0 + hours(4)),
    ]


def test_a_run_is_named_by_its_schedule_and_due_time():
    assert run_id(7, T0) == run_id(7, T0)
    assert len({run_id(7, T0), run_id(7, T0 + hours(1)), run_id(8, T0)}) == 3
