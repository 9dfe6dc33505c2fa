"""Our beat (scheduler/beat/scheduler.py) as real `celery beat` processes on the real Redis and
database.

What is observed is what beat publishes: each message it sends fires Celery's
`before_task_publish` in the beat process, which scheduler/worker/receivers.py records as a
`task.queued` TaskEvent stamped with the moment of the publish (`created_at`) and the periodic
task's name; the beat writes those rows in batches (within PERSIST_INTERVAL, 0.2 s), so the rows
show up a little after the publish but their times are the publish times. No worker runs here: the
messages are purged at the end of each test.

test_scheduler.py, test_changes.py and test_leadership.py next to this file cover the same
engine in-process, with publishing captured.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app
from scheduler import services
from scheduler.beat import scheduler as beat
from scheduler.beat.changes import CHANGES_CHANNEL
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.devstack.stack import beat_argv
from scheduler.models import ScheduleOptions, TaskEvent
from scheduler.observability.health import BEAT_HEARTBEAT_KEY, BEAT_STANDBY_KEY, MISSED_RUNS_KEY
from tests.processes import RunningProcess, child_env, start_process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Short, so that a takeover takes a few seconds (the default is 10).
TTL = 3.0
# Publishes of one schedule closer than this are the same run published twice.
DUPLICATE = 0.5
# An "every 1 second" schedule publishes every 1 s plus a tick's latency; more than this
# between two publishes is a missed run.
MISSED = 1.5


def _redis() -> Any:
    return get_redis()


def _forget_beats() -> None:
    """Remove the leader lock and the heartbeats left by earlier beats of this run."""
    redis = _redis()
    keys = [redis_key(beat.LEADER_KEY), redis_key(BEAT_HEARTBEAT_KEY), redis_key(MISSED_RUNS_KEY)]
    keys += list(redis.scan_iter(match=f"{redis_key(BEAT_STANDBY_KEY)}:*", count=100))
    redis.delete(*keys)


def _leader_pid() -> int | None:
    """The pid of the beat holding the lock (its value is "hostname:pid:token")."""
    value = _redis().get(redis_key(beat.LEADER_KEY))
    if value is None:
        return None
    return int(value.decode().rsplit(":", 2)[1])


def _subscribers() -> int:
    """How many beats listen for change notices (each subscribes after its first tick)."""
    [(_, count)] = _redis().pubsub_numsub(redis_key(CHANGES_CHANNEL))
    return int(count)


def _heartbeat(key: str) -> dict[str, Any] | None:
    raw = _redis().get(redis_key(key))
    return None if raw is None else dict(json.loads(raw))


@dataclass
class Publish:
    at: float  # epoch seconds
    task_id: str
    due: float  # epoch seconds: the run's due time (its scheduled_for header)


def _publishes(name: str) -> list[Publish]:
    rows = TaskEvent.objects.filter(type="task.queued", periodic_task_name=name).order_by(
        "created_at", "id"
    )
    return [
        Publish(
            row.created_at.timestamp(),
            row.task_id,
            datetime.fromisoformat(row.payload["scheduled_for"]).timestamp(),
        )
        for row in rows
    ]


def _gaps(publishes: list[Publish]) -> list[float]:
    """Seconds between the due times of consecutive runs: a run published twice has its due
    time twice (0); one missed leaves a gap of two. (Publish times are not regular: a run
    published late is followed by the next on its due time.)"""
    return [round(later.due - earlier.due, 3) for earlier, later in itertools.pairwise(publishes)]


def _row(name: str) -> PeriodicTask:
    return PeriodicTask.objects.get(name=name)


@dataclass
class Beats:
    """Starts `celery beat` processes; the fixture stops every one of them."""

    log_dir: Path
    started: list[RunningProcess] = field(default_factory=list)

    def start(self, *, ttl: float = TTL) -> RunningProcess:
        argv = beat_argv(python=sys.executable)
        env = child_env(BEAT_LEADER_TTL=f"{ttl:g}")
        process = start_process("beat", argv, env=env, log_dir=self.log_dir)
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- beat pid {p.process.pid} (exit {p.process.poll()}):\n{p.log()}"
            for p in self.started
        )

    def wait_ready(self, *processes: RunningProcess, timeout: float = 40) -> RunningProcess:
        """Wait until one of `processes` leads and all of them listen; the leader."""
        pids = {p.process.pid: p for p in processes}

        def ready() -> bool:
            for p in processes:
                if p.process.poll() is not None:
                    raise AssertionError(f"beat exited while starting:\n{self.logs()}")
            return _leader_pid() in pids and _subscribers() >= len(processes)

        wait_for(ready, timeout=timeout, what=f"beat to lead and listen\n{self.logs()}")
        return pids[_leader_pid() or 0]

    def terminate(self, *processes: RunningProcess) -> None:
        """SIGTERM (beat's graceful stop: its last event rows are written), and wait.

        One SIGTERM: a second one would interrupt the exit (Celery's handler raises SystemExit).
        """
        for p in processes:
            p.process.send(signal.SIGTERM)
        for p in processes:
            p.process.wait(20)
            p.stop()  # kills it if it is still running; reaps it

    def stop_all(self) -> None:
        self.terminate(*[p for p in self.started if p.process.is_running()])
        for p in self.started:
            p.stop()  # reaps, and kills whatever is left of its process group


@pytest.fixture
def beats(transactional_db: None, run_dir: Path) -> Iterator[Beats]:
    _forget_beats()
    existing = set(PeriodicTask.objects.values_list("pk", flat=True))
    beats = Beats(log_dir=run_dir)
    try:
        yield beats
    finally:
        beats.stop_all()
        _forget_beats()
        # No worker ran: drop the messages published, or a later test's worker would run them.
        with contextlib.suppress(Exception):
            app.control.purge()
        created = PeriodicTask.objects.exclude(pk__in=existing)
        names = list(created.values_list("name", flat=True))
        created.delete()
        TaskEvent.objects.filter(periodic_task_name__in=names).delete()


def _wait_publishes(name: str, count: int, *, timeout: float, beats: Beats) -> list[Publish]:
    found: list[Publish] = []

    def enough() -> bool:
        nonlocal found
        found = _publishes(name)
        return len(found) >= count

    wait_for(
        enough,
        timeout=timeout,
        interval=0.05,
        what=f"{count} publishes of {name!r}\n{beats.logs()}",
    )
    return found


def _just_after_a_publish(name: str, *, beats: Beats, timeout: float = 10) -> float:
    """Wait until a run of `name` was published less than 0.6 s ago; its time.

    Runs of an "every 1 second" schedule are recorded and published about 1 s apart: acting
    right after one (a stop, a kill) falls far from the moment the next is recorded, and after
    the publish's event row was written.
    """
    seen = len(_publishes(name))
    latest = 0.0

    def fresh() -> bool:
        nonlocal latest
        publishes = _publishes(name)
        if len(publishes) <= seen:
            return False
        latest = publishes[-1].at
        return time.time() - latest < 0.6

    wait_for(
        fresh, timeout=timeout, interval=0.02, what=f"a fresh publish of {name!r}\n{beats.logs()}"
    )
    return latest


def _wait_exited(process: RunningProcess, timeout: float = 20) -> None:
    assert process.process.wait(timeout), f"beat did not exit:\n{process.log()}"


def _assert_regular(publishes: list[Publish], name: str) -> None:
    gaps = _gaps(publishes)
    assert all(DUPLICATE <= gap <= MISSED for gap in gaps), f"{name}: gaps {gaps}"


# --- 1. An edit takes effect within a second ---------------------------------------------------


def test_an_edit_through_the_services_takes_effect_within_a_second(beats: Beats):
    services.schedule_create(name="hourly", task="scheduler.ping", schedule="every 1 hour")
    services.schedule_create(
        name="off", task="scheduler.ping", schedule="every 1 minute", enabled=False
    )
    # Overdue once enabled: its last run was long ago (an UPDATE: save() clears last_run_at on
    # a disabled task).
    PeriodicTask.objects.filter(name="off").update(
        last_run_at=datetime.now(UTC) - timedelta(hours=2)
    )
    process = beats.start()
    beats.wait_ready(process)  # loaded "hourly", and listening for notices

    # A disabled task enabled: overdue, so it runs as soon as beat knows.
    services.schedule_enable(name="off")
    enabled_at = time.time()
    # Interval semantics (django-celery-beat's): the first run is one period after the save.
    services.schedule_update(name="hourly", schedule="every 1 second")
    updated_at = time.time()
    saved_at = _row("hourly").date_changed.timestamp()

    # The rows' publish times are stamped in beat; waiting for the rows adds their write delay
    # (0.2 s) to the wait only, not to the times compared.
    [enabled_run] = _wait_publishes("off", 1, timeout=10, beats=beats)
    first_run = _wait_publishes("hourly", 1, timeout=10, beats=beats)[0]

    # The notice wakes beat at once (a few ms here): well inside the 1 s promise, and faster
    # than the once-a-second look at the change marker that catches changes without a notice.
    assert enabled_run.at - enabled_at <= 0.5, (
        f"enabled, ran {enabled_run.at - enabled_at:.3f} s later"
    )
    # Due 1 s after the save: published then (not earlier), and within the 1 s pickup promise
    # plus that period: 1.5 s after the commit at most.
    assert first_run.at >= saved_at + 1.0 - 0.01
    assert first_run.at - updated_at <= 1.5, f"ran {first_run.at - updated_at:.3f} s after the edit"
    # And it goes on every second, as edited.
    publishes = _wait_publishes("hourly", 3, timeout=10, beats=beats)
    _assert_regular(publishes, "hourly")
    print(  # shown with -s: the latencies measured
        f"enable -> publish {enabled_run.at - enabled_at:.3f} s; "
        f"update -> first publish {first_run.at - updated_at:.3f} s "
        f"({first_run.at - saved_at - 1.0:.3f} s after it was due)"
    )


# --- 2. Two beats: one leads, every run published once -----------------------------------------


def test_of_two_beats_one_leads_and_every_run_is_published_exactly_once(beats: Beats):
    services.schedule_create(name="tick-a", task="scheduler.ping", schedule="every 1 second")
    services.schedule_create(name="tick-b", task="scheduler.ping", schedule="every 1 second")
    first, second = beats.start(), beats.start()
    leader = beats.wait_ready(first, second)
    standby = second if leader is first else first

    _wait_publishes("tick-a", 10, timeout=30, beats=beats)
    # One leader, the same all along; the other stands by and says who leads.
    assert _leader_pid() == leader.process.pid
    heartbeat = _heartbeat(BEAT_HEARTBEAT_KEY)
    assert heartbeat is not None
    assert (heartbeat["pid"], heartbeat["role"]) == (leader.process.pid, "leader")
    standbys = [
        _heartbeat(key.decode().removeprefix(redis_key("")))
        for key in _redis().scan_iter(match=f"{redis_key(BEAT_STANDBY_KEY)}:*")
    ]
    assert [(s["pid"], s["role"], s["leader"]) for s in standbys if s] == [
        (standby.process.pid, "standby", heartbeat["id"])
    ]
    assert "leads" in leader.log_path.read_text()
    assert "leads" not in standby.log_path.read_text()

    _just_after_a_publish("tick-a", beats=beats)
    beats.terminate(first, second)  # their last event rows are written as they exit

    for name in ("tick-a", "tick-b"):
        publishes = _publishes(name)
        span = publishes[-1].at - publishes[0].at
        _assert_regular(publishes, name)
        assert len({p.task_id for p in publishes}) == len(publishes)
        # One per second of the span, and every run recorded was published.
        assert abs(len(publishes) - 1 - span) <= 1, f"{name}: {len(publishes)} in {span:.2f} s"
        assert _row(name).total_run_count == len(publishes)


# --- 3. kill -9 of the leader: the standby takes over -------------------------------------------


def test_when_the_leader_is_killed_the_standby_takes_over_without_a_duplicate_or_a_gap(
    beats: Beats,
):
    services.schedule_create(name="tick", task="scheduler.ping", schedule="every 1 second")
    first, second = beats.start(), beats.start()
    leader = beats.wait_ready(first, second)
    standby = second if leader is first else first
    _wait_publishes("tick", 3, timeout=20, beats=beats)

    # Right after a publish: the next run is not recorded yet (so none is lost by the kill,
    # and the event row of the last one is written).
    last_before = _just_after_a_publish("tick", beats=beats)
    leader.process.send(signal.SIGKILL)
    killed_at = time.time()
    _wait_exited(leader)
    assert leader.process.poll() == -signal.SIGKILL

    wait_for(
        lambda: _leader_pid() == standby.process.pid,
        timeout=TTL + 5,
        interval=0.05,
        what=f"the standby to take over\n{beats.logs()}",
    )
    wait_for(
        lambda: (_heartbeat(BEAT_HEARTBEAT_KEY) or {}).get("pid") == standby.process.pid,
        timeout=5,
        what="the new leader's heartbeat",
    )
    heartbeat = _heartbeat(BEAT_HEARTBEAT_KEY)
    assert heartbeat is not None
    leading_since = float(heartbeat["leading_since"])
    before = len(_publishes("tick"))
    _wait_publishes("tick", before + 3, timeout=15, beats=beats)
    _just_after_a_publish("tick", beats=beats)
    beats.terminate(standby)

    publishes = _publishes("tick")
    gaps = _gaps(publishes)
    assert len({p.task_id for p in publishes}) == len(publishes)
    assert all(gap >= DUPLICATE for gap in gaps), f"a run published twice: gaps {gaps}"
    # One gap, the takeover: the lock expires within TTL of the kill (renewed every tick, so
    # at most ~1 s before it), and the standby tries every second.
    long_gaps = [(i, gap) for i, gap in enumerate(gaps) if gap > MISSED]
    assert len(long_gaps) == 1, f"gaps {gaps}"
    [(index, gap)] = long_gaps
    resumed = publishes[index + 1]
    assert publishes[index].at == last_before
    assert leading_since - killed_at <= TTL + 1.5, f"took over {leading_since - killed_at:.2f} s"
    # The new leader reloads the runs the old one recorded, and runs the overdue run at once
    # (misfire policy run_once: one catch-up run, not one per second missed)...
    assert resumed.at - leading_since <= 0.5, f"resumed {resumed.at - leading_since:.3f} s late"
    # ... then every second again: the gap is the takeover and nothing more.
    _assert_regular(publishes[index + 1 :], "tick after the takeover")
    _assert_regular(publishes[: index + 1], "tick before the kill")
    assert _row("tick").total_run_count == len(publishes)
    print(  # shown with -s: the takeover measured
        f"killed {killed_at - last_before:.3f} s after a publish; led again "
        f"{leading_since - killed_at:.3f} s after the kill; resumed "
        f"{resumed.at - leading_since:.3f} s after that; gap {gap:.3f} s"
    )


# --- 4. One-off (clocked) tasks and restarts ----------------------------------------------------


def test_a_one_off_runs_once_across_a_restart_and_once_if_it_came_due_while_beat_was_down(
    beats: Beats,
):
    first = beats.start()
    beats.wait_ready(first)
    services.schedule_create(name="once", task="scheduler.ping", schedule="in 2 seconds")
    _wait_publishes("once", 1, timeout=10, beats=beats)
    beats.terminate(first)
    _wait_exited(first)

    # Due while no beat runs.
    services.schedule_create(name="late", task="scheduler.ping", schedule="in 1 second")
    clocked = _row("late").clocked
    assert clocked is not None
    due = clocked.clocked_time.timestamp()
    wait_for(lambda: time.time() > due + 0.5, timeout=5, what="'late' to come due")

    second = beats.start()
    beats.wait_ready(second)
    [late] = _wait_publishes("late", 1, timeout=10, beats=beats)
    assert late.at >= due
    # A few more ticks of the restarted beat: nothing runs again.
    time.sleep(2.0)
    beats.terminate(second)

    for name in ("once", "late"):
        assert len(_publishes(name)) == 1, name
        row = _row(name)
        assert (row.enabled, row.total_run_count) == (False, 1), name
        assert row.last_run_at is not None


# --- 5. A graceful stop -----------------------------------------------------------------------


def test_a_stopped_leader_hands_over_at_once_without_a_duplicate_or_a_gap(beats: Beats):
    services.schedule_create(name="tick", task="scheduler.ping", schedule="every 1 second")
    # The default TTL: a handover faster than it is the lock released, not expired.
    first, second = beats.start(ttl=10), beats.start(ttl=10)
    leader = beats.wait_ready(first, second)
    standby = second if leader is first else first
    _wait_publishes("tick", 3, timeout=20, beats=beats)

    _just_after_a_publish("tick", beats=beats)
    leader.process.send(signal.SIGTERM)
    stopped_at = time.time()
    _wait_exited(leader)
    wait_for(
        lambda: _leader_pid() == standby.process.pid,
        timeout=5,
        interval=0.05,
        what=f"the standby to take over\n{beats.logs()}",
    )
    took_over = time.time() - stopped_at
    # The standby tries every second (SYNC_INTERVAL).
    assert took_over < 2.0, f"took over {took_over:.2f} s after the stop"
    before = len(_publishes("tick"))
    _wait_publishes("tick", before + 3, timeout=10, beats=beats)
    _just_after_a_publish("tick", beats=beats)
    beats.terminate(standby)

    publishes = _publishes("tick")
    gaps = _gaps(publishes)
    assert len({p.task_id for p in publishes}) == len(publishes)
    assert all(DUPLICATE <= gap <= took_over + MISSED for gap in gaps), f"gaps {gaps}"
    assert _row("tick").total_run_count == len(publishes)


def test_sigterm_stops_beat_cleanly(beats: Beats):
    process = beats.start()
    beats.wait_ready(process)
    time.sleep(0.3)  # waiting on the notices channel, as beat is nearly all the time
    process.process.send(signal.SIGTERM)
    _wait_exited(process)
    # Released on the way out: no beat waits for it to expire.
    assert _leader_pid() is None
    critical = [line for line in process.log_path.read_text().splitlines() if "CRITICAL" in line]
    assert (process.process.poll(), critical) == (0, [])


# --- 7. Run limits and end times hold across a restart (issue 19) -------------------------------


def test_max_runs_and_the_end_time_stop_a_schedule_across_a_beat_restart(beats: Beats):
    services.schedule_create(name="limited", task="scheduler.ping", schedule="every 1 second")
    services.schedule_create(name="ending", task="scheduler.ping", schedule="every 1 second")
    # UPDATEs, as a form would save them (the services' own fields are tested with them).
    ScheduleOptions.objects.filter(periodic_task__name="limited").update(
        max_runs=3, remaining_runs=3
    )
    first = beats.start()
    beats.wait_ready(first)
    # Set once beat runs (a process may take seconds to start on a busy machine): a save, so
    # that beat is told at once.
    ending = _row("ending")
    ends_at = datetime.now(UTC) + timedelta(seconds=4)
    ending.expires = ends_at
    ending.save()
    _wait_publishes("limited", 2, timeout=15, beats=beats)
    beats.terminate(first)  # two of its three runs made (or all three, if it was quick)

    second = beats.start()
    beats.wait_ready(second)
    wait_for(
        lambda: not _row("limited").enabled and not _row("ending").enabled,
        timeout=25,
        interval=0.1,
        what=f"both schedules to stop by themselves\n{beats.logs()}",
    )
    time.sleep(1.5)  # a run after the stop would be published by now
    beats.terminate(second)

    limited = _publishes("limited")
    assert len(limited) == 3, [p.due for p in limited]
    assert len({p.task_id for p in limited}) == 3
    row = _row("limited")
    assert row.total_run_count == 3
    assert ScheduleOptions.objects.get(periodic_task=row).remaining_runs == 0
    made = _publishes("ending")
    assert made, "it ran until its end"
    assert all(p.due < ends_at.timestamp() for p in made)
    assert max(p.at for p in made) < ends_at.timestamp() + 1.0
