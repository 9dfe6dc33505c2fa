"""A tournament round of 1,000 entries on a real worker, and ranking 1,000 entries.

Goals (the tournaments issue): a round of 1,000 entries completes in <= 30 s on a 2-core machine
with the rules strategies and a real worker; rankings of 1,000 entries update in <= 1 s.

round:    a live tournament of N entries (strategies mixed: buy_and_hold, momentum,
          mean_reversion, random, and brain with the offline rules brain), 5 symbols, at tick
          ~50 so that every strategy sees a full price history.
          `tournaments.run_live_tournament_agents` is queued once, as beat queues it (the real
          path: it queues one `tournaments.run_agent_decision` per entry); timed from that send
          until N Decision rows exist for the round's tick. A real worker (prefork,
          concurrency 2) consumes agents,trading,recovery,default.
baseline: the same N decisions made in this process, one after the other, by
          `services.decision_make` at the tick before (no broker, no worker, no result rows):
          what the decisions themselves cost. The ratio round / baseline shows what the queue
          and the worker add (or save: two processes work at once).
rankings: `services.rankings_update` of the N entries in this process, median of 5.

    .venv/bin/python benchmarks/tournament_round.py [--entries 1000] [--profile]
    BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432 \
        .venv/bin/python benchmarks/tournament_round.py

Writes benchmarks/results/tournament_round.json (tournament_round-postgresql.json on PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from _harness import database_vendor, environment, worker, write_result

ROUND_GOAL = 30.0  # seconds for a round of 1,000 entries
RANKINGS_GOAL = 1.0  # seconds to rank 1,000 entries
STRATEGIES = ["buy_and_hold", "momentum", "mean_reversion", "random", "brain"]
SYMBOLS = ["ACME", "BOLT", "CRUX", "DYNO", "EMBR"]
INTERVAL = 300
TICK = 50  # the round's tick is about this: a full history (20 ticks) for every strategy
TIMEOUT = 300.0
POLL = 0.1


def _cpu_seconds(pid: int) -> float:
    import psutil

    try:
        main = psutil.Process(pid)
        total = sum(main.cpu_times()[:4])
        for child in main.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(child.cpu_times()[:2])
    except psutil.NoSuchProcess:
        return 0.0
    return total


def setup(entries: int) -> tuple[Any, float]:
    """A live tournament of `entries` rules traders; (the tournament, seconds it took)."""
    from django.utils import timezone

    from agents.models import Agent
    from agents.services import agent_create
    from tournaments import services

    started = time.perf_counter()
    now = timezone.now()
    tournament = services.tournament_create(
        name=f"bench {uuid.uuid4().hex[:6]}",
        # Half a tick into tick TICK: the round's tick stays put for minutes.
        starts_at=now - timedelta(seconds=TICK * INTERVAL + INTERVAL // 2),
        ends_at=now + timedelta(hours=2),
        symbols=SYMBOLS,
        decision_interval=INTERVAL,
        market_seed=11,
    )
    configs = {"momentum": "momentum", "mean_reversion": "mean_reversion"}
    agents = []
    strategies: dict[int, str] = {}
    for n in range(entries):
        strategy = STRATEGIES[n % len(STRATEGIES)]
        config = {"strategy": configs.get(strategy, "momentum"), "trade_fraction": 0.2}
        agent = agent_create(
            name=f"Trader {n}",
            slug=f"bench-trader-{n}",
            kind=Agent.Kind.TRADER,
            brain_config=config,
        )
        agents.append(agent)
        strategies[agent.pk] = strategy
    services.tournament_initialize_agents(
        tournament=tournament, agents=agents, strategies=strategies
    )
    tournament = services.tournament_start(tournament=tournament)
    return tournament, time.perf_counter() - started


def in_process_round(tournament: Any, tick: int, *, profile: bool) -> dict[str, Any]:
    """Every entry's decision at `tick`, made here one after the other."""
    from tournaments import services
    from tournaments.models import Entry

    entries = list(Entry.objects.filter(tournament=tournament).order_by("id"))
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    trades = 0
    for entry in entries:
        trades += services.decision_make(entry=entry, tick=tick).trades
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    if profiler is not None:
        _print_profile(profiler, f"in-process decisions ({len(entries)})")
    return {
        "entries": len(entries),
        "tick": tick,
        "seconds": round(elapsed, 3),
        "ms_per_decision": round(elapsed / len(entries) * 1000, 3),
        "trades": trades,
    }


def worker_round(tournament: Any, entries: int) -> dict[str, Any]:
    """Queue the tournament's round as beat does; wait for every entry's decision."""
    from django_celery_results.models import TaskResult

    from scheduler.core import result_duration
    from tournaments import services
    from tournaments.models import Decision, Trade
    from tournaments.tasks import run_live_tournament_agents

    decisions = Decision.objects.filter(entry__tournament=tournament)
    hostname = f"bench-round-{uuid.uuid4().hex[:6]}@localhost"
    with worker(hostname=hostname, queues="agents,trading,recovery,default") as process:
        _warm_up()
        tick = services.market_of(tournament).tick_at(services.timezone.now())
        cpu_before = _cpu_seconds(process.pid)
        started = time.perf_counter()
        sent = run_live_tournament_agents.apply_async(kwargs={"tournament_id": tournament.pk})
        done = 0
        while done < entries:
            if time.perf_counter() - started > TIMEOUT:
                raise SystemExit(f"round: {entries - done} decision(s) missing after {TIMEOUT} s")
            time.sleep(POLL)
            done = decisions.filter(tick__gte=tick).count()
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(process.pid) - cpu_before
    fan_out = TaskResult.objects.filter(task_id=sent.id).first()
    fanned = result_duration(fan_out) if fan_out is not None else None
    round_ticks = set(decisions.filter(tick__gte=tick).values_list("tick", flat=True))
    return {
        "entries": entries,
        "tick": sorted(round_ticks),
        "seconds": round(elapsed, 3),
        "decisions_per_second": round(entries / elapsed, 1),
        "fan_out_seconds": round(fanned, 3) if fanned is not None else None,
        "worker_cpu_ms_per_decision": round(cpu / entries * 1000, 3),
        "trades": Trade.objects.filter(entry__tournament=tournament, tick__gte=tick).count(),
    }


def _warm_up() -> None:
    """A ping through the worker: its pool children have imported and connected."""
    from django_celery_results.models import TaskResult

    from config.celery import app

    ids = [str(app.send_task("scheduler.ping", queue="default").id) for _ in range(4)]
    deadline = time.monotonic() + 60
    while TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").count() < len(ids):
        if time.monotonic() > deadline:
            raise SystemExit("warm-up pings unfinished after 60 s")
        time.sleep(0.05)


def rankings(tournament: Any, *, rounds: int, profile: bool) -> dict[str, Any]:
    from tournaments import services

    times = []
    profiler = cProfile.Profile() if profile else None
    for _ in range(rounds):
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        board = services.rankings_update(tournament=tournament)
        times.append(time.perf_counter() - started)
        if profiler is not None:
            profiler.disable()
    if profiler is not None:
        _print_profile(profiler, f"rankings_update x {rounds}")
    return {
        "entries": len(board),
        "median_seconds": round(statistics.median(times), 3),
        "rounds": [round(t, 3) for t in times],
    }


def _print_profile(profiler: cProfile.Profile, title: str) -> None:
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    print(f"--- profile: {title} (cumulative)")
    print(text.getvalue())


def _verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--rankings-rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print where in-process time goes")
    args = parser.parse_args()
    with environment():
        vendor = database_vendor()
        tournament, setup_seconds = setup(args.entries)
        from tournaments import services

        tick = services.market_of(tournament).tick_at(services.timezone.now())
        baseline = in_process_round(tournament, tick - 1, profile=args.profile)
        round_ = worker_round(tournament, args.entries)
        ranked = rankings(tournament, rounds=args.rankings_rounds, profile=args.profile)

    ratio = round(round_["seconds"] / baseline["seconds"], 3)
    scale = args.entries / 1000  # the goals are for 1,000 entries
    round_goal, rankings_goal = ROUND_GOAL * scale, RANKINGS_GOAL * scale
    print(
        f"tournament_round: {args.entries} entries ({', '.join(STRATEGIES)}), "
        f"{len(SYMBOLS)} symbols, database {vendor}, worker prefork concurrency 2 "
        f"(setup {setup_seconds:.1f} s)"
    )
    print(f"{'':<34}{'seconds':>10}{'per entry':>12}{'goal':>10}  verdict")
    print(
        f"{'round on a real worker':<34}{round_['seconds']:>10}"
        f"{round_['seconds'] / args.entries * 1000:>9.2f} ms{round_goal:>9g}s  "
        f"{_verdict(round_['seconds'], round_goal)}"
    )
    print(
        f"{'  baseline: in-process, 1 process':<34}{baseline['seconds']:>10}"
        f"{baseline['ms_per_decision']:>9.2f} ms{'':>10}  (ratio round/baseline {ratio}x)"
    )
    print(
        f"{'rankings_update (median of ' + str(args.rankings_rounds) + ')':<34}"
        f"{ranked['median_seconds']:>10}"
        f"{ranked['median_seconds'] / args.entries * 1000:>9.2f} ms{rankings_goal:>9g}s  "
        f"{_verdict(ranked['median_seconds'], rankings_goal)}"
    )
    print(
        f"round: {round_['decisions_per_second']} decisions/s, fan-out task "
        f"{round_['fan_out_seconds']} s, worker CPU {round_['worker_cpu_ms_per_decision']} ms "
        f"per decision, {round_['trades']} trades at tick {round_['tick']}"
    )
    name = "tournament_round" if vendor == "sqlite" else f"tournament_round-{vendor}"
    path = write_result(
        name,
        {
            "database": vendor,
            "entries": args.entries,
            "setup_seconds": round(setup_seconds, 3),
            "round": {**round_, "goal_seconds": round_goal},
            "baseline_in_process": baseline,
            "round_over_baseline": ratio,
            "rankings": {**ranked, "goal_seconds": rankings_goal},
            "goals_met": {
                "round": round_["seconds"] <= round_goal,
                "rankings": ranked["median_seconds"] <= rankings_goal,
            },
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
