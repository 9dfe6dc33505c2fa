"""Writes for tournaments: their life (create, start, end), entries, decisions, recovery, ranks.

A decision is made once per entry and market tick: its `Decision` row (unique on entry + tick)
is inserted in the same transaction as its trades and the entry's new portfolio, with the entry
row locked, so a redelivered or repeated decision finds the row and trades nothing.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agents.brains.base import TradeDecision
from agents.models import Agent
from agents.services import agent_brain
from scheduler.live import event_record
from scheduler.protocol import object_header
from scheduler.services import schedule_create, schedule_disable, schedule_enable
from tournaments.market import Market
from tournaments.models import Decision, Entry, EquitySnapshot, Tournament, Trade
from tournaments.strategies import STRATEGIES, Fill, apply_orders, equity, get_strategy

# An entry that has not decided for this long in a live tournament is stale (seed: 10 minutes).
STALE_AFTER = timedelta(minutes=10)
# Every tick prices every symbol for every entry: a pasted list of thousands is refused.
MAX_SYMBOLS = 100
MAX_SYMBOL_LENGTH = 20
CENTS = Decimal("0.01")


class TournamentError(ValueError):
    """Bad input or a transition that is not allowed, by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


def money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENTS)


def market_of(tournament: Tournament) -> Market:
    """The tournament's market; one per process for the same parameters, so that a worker
    deciding for a thousand entries computes each tick's prices and histories once."""
    return _market(
        tournament.market_seed,
        tuple(tournament.symbols),
        tournament.starts_at,
        tournament.decision_interval,
    )


@functools.lru_cache(maxsize=64)
def _market(seed: int, symbols: tuple[str, ...], start: datetime, interval: int) -> Market:
    return Market(seed, list(symbols), start=start, tick_seconds=interval)


# --- Life ----------------------------------------------------------------------------------------


def tournament_create(
    *,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    symbols: list[str],
    initial_cash: Decimal | float = Decimal("10000"),
    decision_interval: int = 300,
    market_seed: int = 0,
) -> Tournament:
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "a tournament needs a name"
    elif Tournament.objects.filter(name=name.strip()).exists():
        errors["name"] = f"a tournament named {name.strip()!r} exists"
    if ends_at <= starts_at:
        errors["ends_at"] = "must be after starts_at"
    cleaned = [str(symbol).strip().upper() for symbol in symbols if str(symbol).strip()]
    if not cleaned:
        errors["symbols"] = "name at least one symbol"
    elif len(set(cleaned)) != len(cleaned):
        errors["symbols"] = "a symbol is named twice"
    elif len(cleaned) > MAX_SYMBOLS:
        errors["symbols"] = f"at most {MAX_SYMBOLS} symbols, not {len(cleaned)}"
    elif any(len(symbol) > MAX_SYMBOL_LENGTH for symbol in cleaned):
        errors["symbols"] = f"a symbol is at most {MAX_SYMBOL_LENGTH} characters"
    if Decimal(str(initial_cash)) <= 0:
        errors["initial_cash"] = "must be more than 0"
    if not 1 <= decision_interval <= 86_400:
        errors["decision_interval"] = "between 1 and 86400 seconds"
    if errors:
        raise TournamentError(errors)
    return Tournament.objects.create(
        name=name.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        symbols=cleaned,
        initial_cash=money(initial_cash),
        decision_interval=decision_interval,
        market_seed=market_seed,
    )


def tournament_initialize_agents(
    *, tournament: Tournament, agents: list[Agent], strategies: dict[int, str] | None = None
) -> list[Entry]:
    """Entries with the initial cash for `agents` not in the tournament yet (idempotent)."""
    if tournament.status in (Tournament.Status.FINISHED, Tournament.Status.CANCELLED):
        raise TournamentError({"tournament": f"{tournament.name} is {tournament.status}"})
    chosen = strategies or {}
    unknown = {name for name in chosen.values() if name not in STRATEGIES}
    if unknown:
        raise TournamentError({"strategy": f"unknown: {', '.join(sorted(unknown))}"})
    present = set(tournament.entries.values_list("agent_id", flat=True))
    entries = [
        Entry(
            tournament=tournament,
            agent=agent,
            strategy=chosen.get(agent.pk) or _default_strategy(agent),
            cash=tournament.initial_cash,
            equity=tournament.initial_cash,
            heartbeat_at=timezone.now(),
        )
        for agent in agents
        if agent.pk not in present
    ]
    return Entry.objects.bulk_create(entries, ignore_conflicts=True)


def _default_strategy(agent: Agent) -> str:
    # An agent with an LLM brain trades with it; a rules agent with its configured rule.
    if agent.brain == Agent.Brain.OPENAI:
        return "brain"
    rule = str((agent.brain_config or {}).get("strategy") or "")
    return {"momentum": "momentum", "mean_reversion": "mean_reversion", "hold": "buy_and_hold"}.get(
        rule, "momentum"
    )


@transaction.atomic
def tournament_start(
    *,
    tournament: Tournament,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
    actor: Any = None,
    now: datetime | None = None,
) -> Tournament:
    """Live now, trading from now: its periodic task (every decision interval) is created, or
    enabled again, and expires at its end.

    Started before its start time, its start moves to now (the market's ticks count from its
    start: left in the future, every decision would land on tick 0 until then) and its end keeps
    the tournament's duration, or is `ends_at`, or `duration` from the new start. Started at or
    after its start time (`transitions_check`), its dates stay unless a new end is given.
    """
    now = now or timezone.now()
    tournament = Tournament.objects.select_for_update().get(pk=tournament.pk)
    if tournament.status != Tournament.Status.SCHEDULED:
        raise TournamentError(
            {"status": f"only a scheduled tournament starts, not a {tournament.status} one"}
        )
    tournament.starts_at, tournament.ends_at = _start_dates(
        tournament, ends_at=ends_at, duration=duration, now=now
    )
    _periodic_task_live(tournament, actor=actor)
    tournament.status = Tournament.Status.LIVE
    tournament.save(update_fields=["status", "starts_at", "ends_at", "periodic_task", "updated_at"])
    _periodic_task_dates_sync(tournament)
    tournament.entries.filter(status=Entry.Status.FINISHED).update(status=Entry.Status.ACTIVE)
    _record(tournament, "tournament.started")
    return tournament


def _start_dates(
    tournament: Tournament, *, ends_at: datetime | None, duration: timedelta | None, now: datetime
) -> tuple[datetime, datetime]:
    """The start and end of `tournament` started at `now` (`tournament_start` says which)."""
    starts_at = min(tournament.starts_at, now)
    if ends_at is not None and duration is not None:
        raise TournamentError({"ends_at": "give a new end or a duration, not both"})
    if duration is not None:
        if duration <= timedelta(0):
            raise TournamentError({"duration": "must be more than 0"})
        try:
            ends_at = starts_at + duration
        except OverflowError:
            raise TournamentError({"duration": "ends after year 9999"}) from None
    if ends_at is not None and ends_at <= now:
        raise TournamentError({"ends_at": "must be in the future: it would end before it trades"})
    if ends_at is None:
        ends_at = starts_at + (tournament.ends_at - tournament.starts_at)
    return starts_at, ends_at


def _periodic_task_live(tournament: Tournament, *, actor: Any) -> None:
    """Its periodic task (every decision interval) created, or enabled again: set on
    `tournament`, which the caller saves."""
    if tournament.periodic_task is None:
        periodic_task = schedule_create(
            name=f"tournament {tournament.pk}: run agents ({tournament.name})"[:200],
            task="tournaments.run_live_tournament_agents",
            schedule=f"every {tournament.decision_interval} seconds",
            params={"tournament_id": tournament.pk},
            actor=actor,
        )
        headers = json.loads(periodic_task.headers or "{}")
        headers.update(object_header("tournament", tournament.pk))
        periodic_task.headers = json.dumps(headers)
        periodic_task.save(update_fields=["headers"])
        tournament.periodic_task = periodic_task
    elif not tournament.periodic_task.enabled:
        schedule_enable(name=tournament.periodic_task.name, actor=actor)


@transaction.atomic
def tournament_update(
    *,
    tournament: Tournament,
    name: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> Tournament:
    """Rename it or move its dates (the start only before it starts, the end until it is over);
    its periodic task's start and expiry follow."""
    locked = Tournament.objects.select_for_update().get(pk=tournament.pk)
    errors: dict[str, str] = {}
    if name is not None and name.strip() != locked.name:
        if not name.strip():
            errors["name"] = "a tournament needs a name"
        elif Tournament.objects.filter(name=name.strip()).exclude(pk=locked.pk).exists():
            errors["name"] = f"a tournament named {name.strip()!r} exists"
    moves_start = starts_at is not None and starts_at != locked.starts_at
    if moves_start and locked.status != Tournament.Status.SCHEDULED:
        errors["starts_at"] = "the market's ticks count from it: fixed once it started"
    over = locked.status in (Tournament.Status.FINISHED, Tournament.Status.CANCELLED)
    if ends_at is not None and ends_at != locked.ends_at and over:
        errors["ends_at"] = f"{locked.name} is {locked.status}"
    new_start = starts_at or locked.starts_at
    new_end = ends_at or locked.ends_at
    if "starts_at" not in errors and "ends_at" not in errors and new_end <= new_start:
        errors["ends_at"] = "must be after starts_at"
    if errors:
        raise TournamentError(errors)
    if name is not None:
        locked.name = name.strip()
    locked.starts_at, locked.ends_at = new_start, new_end
    locked.save(update_fields=["name", "starts_at", "ends_at", "updated_at"])
    _periodic_task_dates_sync(locked)
    return locked


def _periodic_task_dates_sync(tournament: Tournament) -> None:
    # Beat runs the periodic task from the start (its first run at once) and not past the end;
    # the dashboard's next runs and heatmap read the same two columns. Saved through the ORM,
    # so beat is told of the change (scheduler/beat/changes.py).
    task = tournament.periodic_task
    if task is None:
        return
    if (task.start_time, task.expires) == (tournament.starts_at, tournament.ends_at):
        return
    task.start_time, task.expires = tournament.starts_at, tournament.ends_at
    task.save(update_fields=["start_time", "expires"])


@transaction.atomic
def tournament_end(
    *, tournament: Tournament, cancelled: bool = False, actor: Any = None
) -> Tournament:
    """Finished (or cancelled): its periodic task is disabled, its entries ranked a last time."""
    tournament = Tournament.objects.select_for_update().get(pk=tournament.pk)
    if tournament.status in (Tournament.Status.FINISHED, Tournament.Status.CANCELLED):
        raise TournamentError({"status": f"{tournament.name} is {tournament.status} already"})
    if tournament.periodic_task is not None and tournament.periodic_task.enabled:
        schedule_disable(name=tournament.periodic_task.name, actor=actor)
    if tournament.status == Tournament.Status.LIVE:
        rankings_update(tournament=tournament)
    tournament.status = Tournament.Status.CANCELLED if cancelled else Tournament.Status.FINISHED
    tournament.save(update_fields=["status", "updated_at"])
    tournament.entries.update(status=Entry.Status.FINISHED)
    _record(tournament, f"tournament.{tournament.status}")
    return tournament


def transitions_check(*, now: datetime | None = None) -> dict[str, list[int]]:
    """Start the tournaments whose time came, end those whose time is up."""
    now = now or timezone.now()
    started = []
    for tournament in Tournament.objects.filter(
        status=Tournament.Status.SCHEDULED, starts_at__lte=now, ends_at__gt=now
    ):
        tournament_start(tournament=tournament)
        started.append(tournament.pk)
    ended = []
    for tournament in Tournament.objects.filter(
        status__in=[Tournament.Status.LIVE, Tournament.Status.SCHEDULED], ends_at__lte=now
    ):
        tournament_end(tournament=tournament)
        ended.append(tournament.pk)
    return {"started": started, "ended": ended}


# --- Decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionOutcome:
    entry: int
    tick: int
    made: bool  # False: this tick was decided already (a redelivery, a repeat)
    trades: int = 0
    reasoning: str = ""


def decision_make(
    *, entry: Entry, tick: int | None = None, task_id: str = "", now: datetime | None = None
) -> DecisionOutcome:
    """One decision of `entry` at `tick` (default: the market's tick now): made once."""
    tournament = Tournament.objects.get(pk=entry.tournament_id)
    market = market_of(tournament)
    tick = market.tick_at(now or timezone.now()) if tick is None else tick
    skipped = _decision_skipped(entry, tournament, tick=tick)
    if skipped is not None:
        return skipped
    # Decided outside the transaction (a brain may take seconds); applied inside, against the
    # portfolio as it is then.
    plan = _decision_plan(entry, tournament, market, tick=tick)
    try:
        trades = _decision_apply(
            entry, plan, prices=market.prices_at(tick), tick=tick, task_id=task_id
        )
    except IntegrityError:  # decided meanwhile by a concurrent run: that one stands
        return DecisionOutcome(entry=entry.pk, tick=tick, made=False)
    return DecisionOutcome(
        entry=entry.pk, tick=tick, made=True, trades=trades, reasoning=plan.reasoning
    )


def _decision_skipped(entry: Entry, tournament: Tournament, *, tick: int) -> DecisionOutcome | None:
    """The outcome of a decision not to make at `tick`; None: make it."""
    if tournament.status != Tournament.Status.LIVE:
        # Queued before the end and run after it (or asked for by hand): no trading outside.
        return DecisionOutcome(
            entry=entry.pk,
            tick=tick,
            made=False,
            reasoning=f"the tournament is {tournament.status}",
        )
    if Decision.objects.filter(entry_id=entry.pk, tick=tick).exists():
        return DecisionOutcome(entry=entry.pk, tick=tick, made=False)
    if tick < entry.last_tick:
        # A message redelivered long after (a dead worker's, after the visibility timeout):
        # the entry has moved on; trading at that tick's prices now would rewrite history.
        return DecisionOutcome(
            entry=entry.pk, tick=tick, made=False, reasoning=f"tick {tick} has passed"
        )
    return None


def _decision_plan(
    entry: Entry, tournament: Tournament, market: Market, *, tick: int
) -> TradeDecision:
    """What `entry`'s strategy (its agent's brain, for "brain") decides at `tick`."""
    strategy = get_strategy(entry.strategy)
    brain = None
    if entry.strategy == "brain":
        brain = agent_brain(Agent.objects.get(pk=entry.agent_id))
    return strategy.decide(
        market.view(
            tick=tick, cash=float(entry.cash), positions=entry.positions, state=entry.state
        ),
        seed=tournament.market_seed * 1_000_003 + entry.pk,
        brain=brain,
    )


@transaction.atomic
def _decision_apply(
    entry: Entry, plan: TradeDecision, *, prices: dict[str, float], tick: int, task_id: str
) -> int:
    """Record the decision, fill its orders at `prices` and save the entry's new portfolio, with
    the entry locked: how many trades. IntegrityError when `tick` was decided meanwhile."""
    locked = Entry.objects.select_for_update().get(pk=entry.pk)
    decision = Decision.objects.create(
        entry=locked,
        tick=tick,
        reasoning=plan.reasoning[:5000],
        orders=[{"symbol": o.symbol, "side": o.side, "quantity": o.quantity} for o in plan.orders],
        task_id=task_id,
    )
    fill = apply_orders(float(locked.cash), locked.positions, plan.orders, prices)
    Trade.objects.bulk_create(
        [
            Trade(
                entry=locked,
                decision=decision,
                symbol=trade.symbol,
                side=trade.side,
                quantity=trade.quantity,
                price=money(trade.price),
                tick=tick,
            )
            for trade in fill.trades
        ]
    )
    _portfolio_save(locked, fill, prices=prices, state=plan.state, tick=tick)
    return len(fill.trades)


def _portfolio_save(
    locked: Entry, fill: Fill, *, prices: dict[str, float], state: dict[str, Any], tick: int
) -> None:
    """The entry's cash, positions, equity and strategy state after `fill`; active again."""
    locked.cash = money(fill.cash)
    locked.positions = fill.positions
    locked.equity = money(equity(fill.cash, fill.positions, prices))
    locked.state = state
    locked.decision_count = F("decision_count") + 1
    locked.last_tick = max(locked.last_tick, tick)
    locked.heartbeat_at = timezone.now()
    if locked.status in (Entry.Status.STALE, Entry.Status.RECOVERING):
        locked.status = Entry.Status.ACTIVE
    locked.save(
        update_fields=[
            "cash",
            "positions",
            "equity",
            "state",
            "decision_count",
            "last_tick",
            "heartbeat_at",
            "status",
            "updated_at",
        ]
    )


# --- Recovery ------------------------------------------------------------------------------------


def portfolio_from_trades(entry: Entry) -> tuple[Decimal, dict[str, int]]:
    """Cash and positions as the entry's trades imply, from the tournament's initial cash."""
    tournament = Tournament.objects.get(pk=entry.tournament_id)
    cash = tournament.initial_cash
    positions: dict[str, int] = {}
    for side, symbol, quantity, price in Trade.objects.filter(entry=entry).values_list(
        "side", "symbol", "quantity", "price"
    ):
        if side == Trade.Side.BUY:
            cash -= quantity * price
            positions[symbol] = positions.get(symbol, 0) + quantity
        else:
            cash += quantity * price
            positions[symbol] = positions.get(symbol, 0) - quantity
    return money(cash), {symbol: n for symbol, n in positions.items() if n}


@transaction.atomic
def entry_recover(*, entry: Entry) -> Entry:
    """Rebuild the entry from the database (portfolio from its trades; the strategy memory of
    its last decision's row stays) and make it active again."""
    locked = Entry.objects.select_for_update().get(pk=entry.pk)
    status = Tournament.objects.filter(pk=locked.tournament_id).values_list("status", flat=True)
    if status.first() != Tournament.Status.LIVE:
        raise TournamentError({"entry": "only an entry of a live tournament is recovered"})
    cash, positions = portfolio_from_trades(locked)
    last = Decision.objects.filter(entry=locked).order_by("-tick").first()
    locked.cash = cash
    locked.positions = positions
    locked.last_tick = last.tick if last is not None else -1
    locked.status = Entry.Status.ACTIVE
    locked.heartbeat_at = timezone.now()
    locked.save(
        update_fields=["cash", "positions", "last_tick", "status", "heartbeat_at", "updated_at"]
    )
    return locked


def stale_entries_mark(*, now: datetime | None = None) -> list[int]:
    """Active entries of live tournaments silent for STALE_AFTER: marked stale; their ids."""
    cutoff = (now or timezone.now()) - STALE_AFTER
    stale = list(
        Entry.objects.filter(
            tournament__status=Tournament.Status.LIVE,
            status=Entry.Status.ACTIVE,
            heartbeat_at__lt=cutoff,
        ).values_list("pk", flat=True)
    )
    Entry.objects.filter(pk__in=stale).update(status=Entry.Status.STALE)
    return stale


# --- Rankings ------------------------------------------------------------------------------------


def rankings_update(*, tournament: Tournament, now: datetime | None = None) -> list[dict[str, Any]]:
    """Equity at the market price, ranks and snapshots of every entry; the leaderboard."""
    market = market_of(tournament)
    now = now or timezone.now()
    tick = market.tick_at(min(now, tournament.ends_at))
    prices = market.prices_at(tick)
    entries = list(tournament.entries.select_related("agent"))
    for entry in entries:
        entry.equity = money(equity(float(entry.cash), entry.positions, prices))
    entries.sort(key=lambda e: (-e.equity, e.pk))
    for rank, entry in enumerate(entries, start=1):
        entry.rank = rank
    with transaction.atomic():
        Entry.objects.bulk_update(entries, ["equity", "rank"], batch_size=500)
        EquitySnapshot.objects.bulk_create(
            [
                EquitySnapshot(
                    entry=entry,
                    at=now,
                    tick=tick,
                    equity=entry.equity,
                    cash=entry.cash,
                    rank=entry.rank,
                )
                for entry in entries
            ],
            batch_size=500,
        )
    board = [leaderboard_row(entry) for entry in entries]
    event_record(
        type="tournament.leaderboard",
        state=tournament.status.upper(),
        message=f"{tournament.name}: leaderboard at tick {tick}",
        object_type="tournament",
        object_id=tournament.pk,
        payload={"tick": tick, "leaderboard": board[:100]},
    )
    return board


def leaderboard_row(entry: Entry) -> dict[str, Any]:
    return {
        "entry": entry.pk,
        "agent": entry.agent.slug,
        "name": entry.agent.name,
        "strategy": entry.strategy,
        "rank": entry.rank,
        "equity": str(entry.equity),
        "cash": str(entry.cash),
        "positions": entry.positions,
        "status": entry.status,
        "decisions": entry.decision_count,
    }


def _record(tournament: Tournament, type: str) -> None:
    event_record(
        type=type,
        state=tournament.status.upper(),
        message=tournament.name,
        object_type="tournament",
        object_id=tournament.pk,
    )
