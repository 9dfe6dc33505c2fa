"""Trading strategies and the exchange that fills their orders. Pure: no ORM.

A strategy sees a `TradeView` (cash, positions, prices, recent prices and its own state) and
returns a `TradeDecision`: orders, its new state (stored by the caller and handed back on the
next tick) and its reasoning. `STRATEGIES` maps names to strategies:

- buy_and_hold: on its first tick, spends its cash in equal parts on every priced symbol; then
  holds forever (its state remembers that it bought).
- momentum: follows the trend over the history window. Sells everything held in a symbol that
  fell more than MOMENTUM_THRESHOLD; buys the symbol that rose most (by more than the threshold)
  with TRADE_FRACTION of its cash.
- mean_reversion: bets that prices return to their mean. Buys the symbol furthest below its mean
  (a z-score of -ENTRY_Z or lower) with TRADE_FRACTION of its cash; sells a holding once its
  price is back at or above its mean.
- random: a seeded coin-flipper, deterministic for the same view and seed.
- brain: delegates to the agent's brain (`Brain.decide_trade`).

Every decision's orders go through `clamp_orders`, so a strategy never asks for what it cannot
have. The exchange does not trust that: `apply_orders` enforces the invariants itself, whatever
orders it is given.
"""

from __future__ import annotations

import math
import random
import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, ClassVar

from agents.brains.base import (
    Brain,
    TradeDecision,
    TradeOrder,
    TradeView,
    affordable_quantity,
    clamp_orders,
    clamped_quantity,
    order_parts,
    usable_price,
    whole_quantity,
)

TRADE_FRACTION = 0.25
MOMENTUM_THRESHOLD = 0.02
ENTRY_Z = 1.0
RANDOM_TRADE_CHANCE = 0.1  # per symbol and tick, for each of buying and selling
RANDOM_MAX_SPEND = 0.2  # of the cash left


class Strategy(ABC):
    name: ClassVar[str]
    description: ClassVar[str]

    def decide(
        self, view: TradeView, *, seed: int = 0, brain: Brain | None = None
    ) -> TradeDecision:
        """Orders for `view`'s tick (each within `clamp_orders`' limits), new state, reasoning."""
        decision = self.plan(view, seed=seed, brain=brain)
        orders, notes = clamp_orders(decision.orders, view)
        reasoning = "; ".join([decision.reasoning, *notes]) if notes else decision.reasoning
        return replace(decision, orders=orders, reasoning=reasoning)

    @abstractmethod
    def plan(self, view: TradeView, *, seed: int, brain: Brain | None) -> TradeDecision:
        """The strategy's own decision, before `decide` clamps its orders."""


class BuyAndHold(Strategy):
    name = "buy_and_hold"
    description = "Spends its cash on every symbol in equal parts on the first tick, then holds."

    def plan(self, view: TradeView, *, seed: int, brain: Brain | None) -> TradeDecision:
        state = dict(view.state)
        if state.get("bought"):
            return TradeDecision([], state, f"hold: bought at tick {state.get('bought_at')}")
        priced = _priced(view)
        budget = view.cash / len(priced) if priced else 0.0
        orders = [
            TradeOrder(symbol, "buy", quantity)
            for symbol, price in priced.items()
            if (quantity := affordable_quantity(budget, price)) > 0
        ]
        if not orders:
            # Not marked as bought: it tries again on the next tick.
            return TradeDecision([], state, "buy and hold: nothing affordable yet")
        state.update(bought=True, bought_at=view.tick)
        bought = ", ".join(f"{order.quantity} {order.symbol}" for order in orders)
        return TradeDecision(orders, state, f"buy and hold: buy {bought}")


class Momentum(Strategy):
    name = "momentum"
    description = (
        f"Buys the symbol that rose most over its history (by more than "
        f"{MOMENTUM_THRESHOLD:.0%}); sells holdings that fell by more than that."
    )

    def plan(self, view: TradeView, *, seed: int, brain: Brain | None) -> TradeDecision:
        changes: dict[str, float] = {}
        for symbol, price in _priced(view).items():
            window = _window(view, symbol)
            if window:
                changes[symbol] = (price - window[0]) / window[0]
        orders, reasons = _sell_held(
            view, [s for s, change in changes.items() if change < -MOMENTUM_THRESHOLD], changes
        )
        selling = {order.symbol for order in orders}
        risers = [
            (change, symbol)
            for symbol, change in changes.items()
            if change > MOMENTUM_THRESHOLD and symbol not in selling
        ]
        if risers:
            # The biggest riser; on a tie, the first symbol in alphabetical order.
            change, symbol = min(risers, key=lambda item: (-item[0], item[1]))
            _buy_with_fraction(view, symbol, f"{change:+.1%}", orders, reasons)
        return _decision(self.name, view, orders, reasons)


class MeanReversion(Strategy):
    name = "mean_reversion"
    description = (
        f"Buys the symbol furthest below its mean (z-score <= -{ENTRY_Z:g}); sells holdings "
        f"back at or above their mean."
    )

    def plan(self, view: TradeView, *, seed: int, brain: Brain | None) -> TradeDecision:
        scores: dict[str, float] = {}
        for symbol, price in _priced(view).items():
            window = _window(view, symbol)
            if len(window) < 3:
                continue
            mean = statistics.fmean(window)
            spread = statistics.pstdev(window, mean)
            if spread > 0:
                scores[symbol] = (price - mean) / spread
        orders, reasons = _sell_held(
            view, [s for s, z in scores.items() if z >= 0], scores, label="z={:+.2f}"
        )
        selling = {order.symbol for order in orders}
        fallers = [(z, s) for s, z in scores.items() if z <= -ENTRY_Z and s not in selling]
        if fallers:
            z, symbol = min(fallers)
            _buy_with_fraction(view, symbol, f"z={z:+.2f}", orders, reasons)
        return _decision(self.name, view, orders, reasons)


class RandomTrader(Strategy):
    name = "random"
    description = "Buys and sells at random, reproducibly: the same view and seed, the same orders."

    def plan(self, view: TradeView, *, seed: int, brain: Brain | None) -> TradeDecision:
        state = dict(view.state)
        decisions = state.get("decisions", 0)
        if isinstance(decisions, bool) or not isinstance(decisions, int):
            decisions = 0
        # A string seed goes through SHA-512, not the per-process salted hash(): reproducible.
        rng = random.Random(f"random:{seed}:{view.tick}:{decisions}")  # noqa: S311 (a game)
        cash = view.cash if math.isfinite(view.cash) else 0.0
        orders: list[TradeOrder] = []
        reasons: list[str] = []
        for symbol, price in _priced(view).items():
            roll = rng.random()
            held = _held(view, symbol)
            if roll < RANDOM_TRADE_CHANCE and held > 0:
                quantity = rng.randint(1, held)
                orders.append(TradeOrder(symbol, "sell", quantity))
                reasons.append(f"sell {quantity} {symbol}")
            elif roll > 1 - RANDOM_TRADE_CHANCE:
                quantity = affordable_quantity(cash * rng.uniform(0, RANDOM_MAX_SPEND), price)
                if quantity > 0:
                    cash -= quantity * price
                    orders.append(TradeOrder(symbol, "buy", quantity))
                    reasons.append(f"buy {quantity} {symbol}")
        state["decisions"] = decisions + 1
        return TradeDecision(orders, state, "random: " + ("; ".join(reasons) or "no orders"))


class BrainTrader(Strategy):
    name = "brain"
    description = "Asks the agent's brain."

    def plan(self, view: TradeView, *, seed: int, brain: Brain | None) -> TradeDecision:
        if brain is None:
            raise ValueError("the brain strategy needs the agent's brain")
        return brain.decide_trade(view=view)


STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (BuyAndHold(), Momentum(), MeanReversion(), RandomTrader(), BrainTrader())
}


def get_strategy(name: str) -> Strategy:
    """The strategy called `name`; ValueError naming the known ones otherwise."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {name!r} ({', '.join(STRATEGIES)})") from None


# -- the exchange ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trade:
    symbol: str
    side: str  # "buy" or "sell"
    quantity: int  # > 0
    price: float  # the market's price, always


@dataclass(frozen=True)
class Fill:
    trades: list[Trade]
    cash: float
    positions: dict[str, int]  # only symbols held (quantity > 0)
    notes: list[str]  # one for each order dropped or cut, and why


def apply_orders(
    cash: float,
    positions: Mapping[str, int],
    orders: Iterable[TradeOrder],
    prices: Mapping[str, float],
) -> Fill:
    """Fill `orders` at `prices` (the market's) against an account of `cash` and `positions`.

    Whatever the orders say, the result keeps the invariants: an order for a symbol without a
    price, with another side than buy or sell, or with a quantity that is not a positive whole
    number is dropped; a sell is cut to what is held, a buy to what the cash pays for; every
    trade is at the market price; cash never goes negative and positions never below zero.

    All sells are filled before any buy (each group in the given order), so a decision can
    sell one symbol to pay for another. Money is counted exactly (in fractions of the prices'
    decimal values), so float rounding can neither overdraw the cash nor leave money behind.

    The account itself must be valid: ValueError for negative or non-finite cash, or a
    negative or non-integer position.
    """
    if isinstance(cash, bool) or not isinstance(cash, int | float) or not math.isfinite(cash):
        raise ValueError(f"cash must be a finite number, not {cash!r}")
    if cash < 0:
        raise ValueError(f"cash must not be negative, not {cash!r}")
    held: dict[str, int] = {}
    for symbol, quantity in positions.items():
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise ValueError(f"position in {symbol!r} must be a whole number >= 0: {quantity!r}")
        held[symbol] = quantity

    parsed: list[tuple[str, str, int, float]] = []
    notes: list[str] = []
    for order in orders:
        if (checked := _parse_order(order, prices, notes)) is not None:
            parsed.append(checked)

    money = _exact(cash)
    trades: list[Trade] = []
    for symbol, side, quantity, price in [p for p in parsed if p[1] == "sell"]:
        allowed = held.get(symbol, 0)
        quantity = clamped_quantity(quantity, allowed, side=side, symbol=symbol, notes=notes)
        if quantity:
            held[symbol] = allowed - quantity
            money += quantity * _exact(price)
            trades.append(Trade(symbol, side, quantity, price))
    for symbol, side, quantity, price in [p for p in parsed if p[1] == "buy"]:
        exact_price = _exact(price)
        allowed = math.floor(money / exact_price)
        quantity = clamped_quantity(quantity, allowed, side=side, symbol=symbol, notes=notes)
        if quantity:
            held[symbol] = held.get(symbol, 0) + quantity
            money -= quantity * exact_price
            trades.append(Trade(symbol, side, quantity, price))
    assert money >= 0
    return Fill(
        trades=trades,
        cash=float(money),  # rounds to the nearest float: never below zero
        positions={symbol: quantity for symbol, quantity in held.items() if quantity > 0},
        notes=notes,
    )


def equity(cash: float, positions: Mapping[str, int], prices: Mapping[str, float]) -> float:
    """Cash plus every holding at its price; ValueError if something held has no price."""
    total = _exact(cash)
    for symbol, quantity in positions.items():
        if not quantity:
            continue
        price = prices.get(symbol)
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise ValueError(f"no price for {symbol!r}, which is held")
        if not math.isfinite(price):
            raise ValueError(f"the price of {symbol!r} is not a number: {price!r}")
        total += quantity * _exact(price)
    return float(total)


# -- helpers -----------------------------------------------------------------------------------


def _priced(view: TradeView) -> dict[str, float]:
    """Symbols with a usable price, in alphabetical order (so decisions never depend on the
    order of the view's dicts)."""
    priced: dict[str, float] = {}
    for symbol in sorted(s for s in view.prices if isinstance(s, str)):
        price = usable_price(view, symbol)
        if price is not None:
            priced[symbol] = price
    return priced


def _window(view: TradeView, symbol: str) -> list[float]:
    """The usable prices of the symbol's history (oldest first); bad entries are skipped."""
    history = view.history.get(symbol) or []
    return [
        float(price)
        for price in history
        if not isinstance(price, bool)
        and isinstance(price, int | float)
        and math.isfinite(price)
        and price > 0
    ]


def _held(view: TradeView, symbol: str) -> int:
    quantity = view.positions.get(symbol, 0)
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        return 0
    return max(quantity, 0)


def _sell_held(
    view: TradeView, symbols: list[str], signals: dict[str, float], label: str = "{:+.1%}"
) -> tuple[list[TradeOrder], list[str]]:
    orders: list[TradeOrder] = []
    reasons: list[str] = []
    for symbol in symbols:
        held = _held(view, symbol)
        if held > 0:
            orders.append(TradeOrder(symbol, "sell", held))
            reasons.append(f"sell {held} {symbol} ({label.format(signals[symbol])})")
    return orders, reasons


def _buy_with_fraction(
    view: TradeView, symbol: str, why: str, orders: list[TradeOrder], reasons: list[str]
) -> None:
    price = usable_price(view, symbol)
    assert price is not None  # only priced symbols get a signal
    quantity = affordable_quantity(view.cash * TRADE_FRACTION, price)
    if quantity > 0:
        orders.append(TradeOrder(symbol, "buy", quantity))
        reasons.append(f"buy {quantity} {symbol} ({why})")


def _decision(
    name: str, view: TradeView, orders: list[TradeOrder], reasons: list[str]
) -> TradeDecision:
    reasoning = f"{name}: " + ("; ".join(reasons) if reasons else "no signal")
    return TradeDecision(orders, dict(view.state), reasoning)


def _parse_order(
    order: Any, prices: Mapping[str, float], notes: list[str]
) -> tuple[str, str, int, float] | None:
    """(symbol, side, quantity, market price) of a fillable order, or None with a note."""
    parts = order_parts(order, notes)
    if parts is None:
        return None
    symbol, side, asked = parts
    price = prices.get(symbol)
    if (
        isinstance(price, bool)
        or not isinstance(price, int | float)
        or not math.isfinite(price)
        or price <= 0
    ):
        notes.append(f"dropped {side} {symbol}: no market price")
        return None
    quantity = whole_quantity(asked, side=side, symbol=symbol, notes=notes)
    if quantity is None:
        return None
    return symbol, side, quantity, price


def _exact(amount: float) -> Fraction:
    # The decimal the float stands for (its repr), not its binary expansion: 0.1 is one tenth,
    # so cents add up exactly.
    return Fraction(repr(amount)) if isinstance(amount, float) else Fraction(amount)
