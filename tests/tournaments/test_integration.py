"""Tournaments on real processes: our beat -> Redis -> a real worker -> the database.

1. A short tournament lives its whole life by itself: `tournaments.check_transitions` (every
   second here; every minute in the seed) makes it live at its start, which creates its own
   periodic task; beat runs that every decision interval (1 s) and the worker makes the
   entries' decisions; `tournaments.update_rankings` (every second) ranks them; at its end
   check_transitions finishes it and disables its periodic task.
2. A worker killed (SIGKILL, its whole process group) in the middle of a round, the messages it
   held delivered again and the round repeated: still one decision per entry and tick, and
   every portfolio is what its trades imply.

Every wait is bounded; every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from agents.models import Agent
from agents.services import agent_create
from config.celery import app
from scheduler.beat import scheduler as beat
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.devstack.stack import beat_argv
from scheduler.observability.queues import queue_depths
from scheduler.services import schedule_create
from tests.processes import (
    RunningProcess,
    child_env,
    start_process,
    start_worker,
    wait_for,
)
from tournaments import services
from tournaments.models import Decision, Entry, EquitySnapshot, Tournament, Trade
from tournaments.tasks import run_agent_decision, run_live_tournament_agents

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUES = ["agents", "trading", "recovery", "default"]
QUEUES_WAITING = [*(f"queued {queue}" for queue in QUEUES), "unacked"]


@dataclass
class Processes:
    """Workers and beats of one test; the fixture stops every one of them."""

    log_dir: Path
    started: list[RunningProcess] = field(default_factory=list)

    def worker(self) -> RunningProcess:
        process = start_worker(log_dir=self.log_dir, queues=QUEUES)
        self.started.append(process)
        return process

    def beat(self) -> RunningProcess:
        argv = beat_argv(python=sys.executable)
        process = start_process(
            "beat", argv, env=child_env(BEAT_LEADER_TTL="3"), log_dir=self.log_dir
        )
        self.started.append(process)
        return process

    def wait(self, predicate: Callable[[], object], *, timeout: float, what: str) -> None:
        """wait_for, with the processes' logs as they are when it times out."""
        try:
            wait_for(predicate, timeout=timeout, interval=0.05, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.process.name} pid {p.process.pid} (exit {p.process.poll()}):\n{p.log()}"
            for p in self.started
        )


def _forget_beats() -> None:
    # A beat of an earlier test that did not release the leader lock would hold off ours.
    get_redis().delete(redis_key(beat.LEADER_KEY))


@pytest.fixture
def processes(run_dir: Path) -> Iterator[Processes]:
    _forget_beats()
    running = Processes(log_dir=run_dir)
    try:
        yield running
    finally:
        for process in reversed(running.started):
            process.stop()
        _forget_beats()
        # What beat published after the worker stopped must not run in a later test's worker.
        with contextlib.suppress(Exception):
            app.control.purge()


def _traders(count: int, strategies: list[str]) -> tuple[list[Agent], dict[int, str]]:
    stamp = time.time_ns()
    agents = [
        agent_create(name=f"Trader {n}", slug=f"trader-{stamp}-{n}", kind=Agent.Kind.TRADER)
        for n in range(count)
    ]
    return agents, {agent.pk: strategies[n % len(strategies)] for n, agent in enumerate(agents)}


def _assert_portfolios_match_trades(tournament: Tournament) -> None:
    for entry in Entry.objects.filter(tournament=tournament):
        assert (entry.cash, entry.positions) == services.portfolio_from_trades(entry), entry
        assert entry.cash >= 0


def _one_decision_per_entry_and_tick(tournament: Tournament) -> bool:
    return not (
        Decision.objects.filter(entry__tournament=tournament)
        .values("entry", "tick")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .exists()
    )


# --- 1. A whole life, by itself --------------------------------------------------------------


def test_a_short_tournament_goes_live_trades_ranks_and_ends_by_itself(processes: Processes):
    # The seed checks transitions every minute and ranks every 30 s; a test has no minute.
    schedule_create(
        name="test: check transitions",
        task="tournaments.check_transitions",
        schedule="every 1 second",
    )
    schedule_create(
        name="test: update rankings", task="tournaments.update_rankings", schedule="every 1 second"
    )
    processes.worker()
    processes.beat()
    # Beat leads and publishes, the worker runs what it publishes.
    processes.wait(
        lambda: TaskResult.objects.filter(
            task_name="tournaments.check_transitions", status="SUCCESS"
        ).exists(),
        timeout=30,
        what="a check of transitions run by beat and the worker",
    )

    starts_at = timezone.now() + timedelta(seconds=1.5)
    ends_at = starts_at + timedelta(seconds=8)
    tournament = services.tournament_create(
        name="Sprint",
        starts_at=starts_at,
        ends_at=ends_at,
        symbols=["ACME", "BOLT", "CRUX"],
        decision_interval=1,
        market_seed=5,
    )
    agents, strategies = _traders(3, ["buy_and_hold", "momentum", "random"])
    services.tournament_initialize_agents(
        tournament=tournament, agents=agents, strategies=strategies
    )

    def status() -> str:
        return Tournament.objects.values_list("status", flat=True).get(pk=tournament.pk)

    assert status() == Tournament.Status.SCHEDULED
    processes.wait(
        lambda: status() == Tournament.Status.LIVE, timeout=10, what="the tournament to go live"
    )
    went_live = timezone.now()
    assert went_live >= starts_at
    tournament.refresh_from_db()
    task = PeriodicTask.objects.get(tournament=tournament)
    assert task.task == "tournaments.run_live_tournament_agents"
    assert task.enabled

    # The worker decides for every entry, round after round; buy_and_hold buys at once.
    decisions = Decision.objects.filter(entry__tournament=tournament)
    processes.wait(
        lambda: (
            decisions.values("tick").distinct().count() >= 2
            and Trade.objects.filter(entry__tournament=tournament).exists()
        ),
        timeout=10,
        what="two rounds of decisions and a trade",
    )
    # Ranked: one snapshot per entry, ranks 1..3.
    snapshots = EquitySnapshot.objects.filter(entry__tournament=tournament)
    processes.wait(snapshots.exists, timeout=10, what="a ranking of the tournament")
    latest = snapshots.order_by("-at").first()
    assert latest is not None
    ranks = snapshots.filter(at=latest.at).values_list("rank", flat=True)
    assert sorted(rank or 0 for rank in ranks) == [1, 2, 3]

    processes.wait(
        lambda: status() == Tournament.Status.FINISHED,
        timeout=(ends_at - timezone.now()).total_seconds() + 10,
        what="the tournament to end",
    )
    task.refresh_from_db()
    assert not task.enabled
    assert timezone.now() >= ends_at
    # Decisions queued before the end may still land; then nothing more.
    processes.wait(
        lambda: run_agent_decision.name not in _running_or_waiting(),
        timeout=10,
        what="the last decisions to be made",
    )
    settled = decisions.count()
    time.sleep(1.5)
    assert decisions.count() == settled

    entries = list(Entry.objects.filter(tournament=tournament))
    assert {entry.status for entry in entries} == {Entry.Status.FINISHED}
    assert sorted(entry.rank or 0 for entry in entries) == [1, 2, 3]
    assert all(entry.decision_count >= 2 for entry in entries)
    # Made by the worker, each once per tick, from the tick of the start on.
    assert all(decision.task_id for decision in decisions)
    assert _one_decision_per_entry_and_tick(tournament)
    _assert_portfolios_match_trades(tournament)
    print(  # shown with -s
        f"live {(went_live - starts_at).total_seconds():.2f} s after its start; "
        f"{settled} decisions over {decisions.values('tick').distinct().count()} ticks, "
        f"{Trade.objects.filter(entry__tournament=tournament).count()} trades, "
        f"{snapshots.values('at').distinct().count()} rankings"
    )


def _running_or_waiting() -> set[str]:
    """Names of tasks started but not finished, and a marker while messages wait."""
    names = set(
        TaskResult.objects.filter(status__in=["PENDING", "RECEIVED", "STARTED"]).values_list(
            "task_name", flat=True
        )
    )
    if queue_depths().get("agents"):
        names.add(run_agent_decision.name)
    return names


# --- 2. A worker killed mid-round --------------------------------------------------------------


def _redeliver_unacked() -> int:
    """What the broker does once the visibility timeout (an hour) has passed: every message
    a dead worker had taken and not acknowledged goes back to its queue. Now, for the test."""
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        # HKEYS is not among the commands kombu's client prefixes: prefix the key here.
        prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
        tags = channel.client.hkeys(f"{prefix}{channel.unacked_key}")
        for tag in tags:
            channel.qos.restore_by_tag(tag)
    return len(tags)


def _unacked() -> int:
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        return int(channel.client.hlen(channel.unacked_key))  # HLEN is prefixed by kombu


def test_a_worker_killed_mid_round_and_restarted_trades_once_per_entry(processes: Processes):
    entries = 150
    interval = 600
    now = timezone.now()
    # Tick 30, and for five more minutes: the repeated round has the same tick.
    tournament = services.tournament_create(
        name="Crash cup",
        starts_at=now - timedelta(seconds=30 * interval + interval // 2),
        ends_at=now + timedelta(hours=1),
        symbols=["ACME", "BOLT", "CRUX", "DYNO"],
        decision_interval=interval,
        market_seed=9,
    )
    agents, strategies = _traders(entries, ["buy_and_hold", "momentum", "mean_reversion", "random"])
    services.tournament_initialize_agents(
        tournament=tournament, agents=agents, strategies=strategies
    )
    tournament = services.tournament_start(tournament=tournament)
    tick = services.market_of(tournament).tick_at(timezone.now())
    decisions = Decision.objects.filter(entry__tournament=tournament)

    first = processes.worker()
    run_live_tournament_agents.apply_async(kwargs={"tournament_id": tournament.pk})
    wait_for(lambda: decisions.count() >= 10, timeout=20, interval=0.01, what="a round under way")
    first.process.send(signal.SIGKILL)  # the whole group: the pool's children die with it
    assert first.process.wait(10), first.log()
    made_before = decisions.count()
    assert 10 <= made_before < entries, "the round was not interrupted"

    # The messages the dead worker held come back, and the round is queued again (as after a
    # beat's double publish): every entry is asked again for the same tick.
    redelivered = _redeliver_unacked()
    run_live_tournament_agents.apply_async(kwargs={"tournament_id": tournament.pk})
    processes.worker()

    def drained() -> dict[str, int]:
        return {
            "decisions": decisions.count(),
            **{f"queued {queue}": queue_depths().get(queue, 0) for queue in QUEUES},
            "unacked": _unacked(),
        }

    done = {"decisions": entries, **dict.fromkeys(QUEUES_WAITING, 0)}
    try:
        processes.wait(lambda: drained() == done, timeout=40, what="every decision, no message")
    except AssertionError as exc:
        raise AssertionError(f"{drained()}: {exc}") from None
    # Every entry was asked again after its decision (by the repeated round, or by the
    # redelivered fan-out and the repeated round): each answered "decided already".
    processes.wait(lambda: _repeats(tournament) >= entries, timeout=10, what="the repeats' results")

    assert decisions.count() == entries
    assert set(decisions.values_list("tick", flat=True)) == {tick}
    assert _one_decision_per_entry_and_tick(tournament)
    for entry in Entry.objects.filter(tournament=tournament):
        assert entry.decision_count == 1, entry
        assert entry.last_tick == tick
        # Trades only through the entry's one decision.
        assert set(entry.trades.values_list("decision__entry_id", flat=True)) <= {entry.pk}
    _assert_portfolios_match_trades(tournament)
    assert Trade.objects.filter(entry__tournament=tournament).exists()
    print(  # shown with -s
        f"killed after {made_before} of {entries} decisions; {redelivered} message(s) "
        f"redelivered; {_repeats(tournament)} repeated decisions traded nothing"
    )


def _repeats(tournament: Tournament) -> int:
    """Decisions asked for again and found made already (made: false), by their results."""
    results = TaskResult.objects.filter(
        task_name=run_agent_decision.name, status="SUCCESS"
    ).values_list("result", flat=True)
    return sum(1 for result in results if result and json.loads(result).get("made") is False)
