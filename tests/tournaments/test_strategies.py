from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.brains import Brain, TradeDecision, TradeOrder, TradeView, clamp_orders, get_brain
from agents.brains.base import BrainReply, ChatMessage
from agents.brains.rules import RulesConfig
from tournaments.market import Market
from tournaments.strategies import (
    MOMENTUM_THRESHOLD,
    STRATEGIES,
    TRADE_FRACTION,
    Fill,
    Trade,
    apply_orders,
    equity,
    get_strategy,
)

RISING = [100.0, 102.0, 104.0, 106.0, 108.0, 110.0]
FALLING = [100.0, 98.0, 96.0, 94.0, 92.0, 90.0]
FLAT = [50.0, 50.0, 50.0, 50.0, 50.0, 50.0]


def make_view(
    history: dict[str, list[float]],
    *,
    cash: float = 1000.0,
    positions: dict[str, int] | None = None,
    state: dict[str, Any] | None = None,
    tick: int = 5,
) -> TradeView:
    """A view whose current prices are the last of each history."""
    return TradeView(
        cash=cash,
        positions=positions or {},
        prices={symbol: prices[-1] for symbol, prices in history.items()},
        history=history,
        state=state or {},
        tick=tick,
    )


MARKET_VIEW = make_view({"RISE": RISING, "FALL": FALLING, "FLAT": FLAT})


def test_it_registers_every_strategy() -> None:
    assert set(STRATEGIES) == {"buy_and_hold", "momentum", "mean_reversion", "random", "brain"}
    assert all(STRATEGIES[name].name == name for name in STRATEGIES)
    assert get_strategy("momentum") is STRATEGIES["momentum"]


def test_it_names_the_strategies_when_one_is_unknown() -> None:
    with pytest.raises(ValueError, match=r"unknown strategy 'yolo' \(buy_and_hold, "):
        get_strategy("yolo")


# -- buy and hold ------------------------------------------------------------------------------


def test_it_buys_everything_once_then_holds() -> None:
    strategy = STRATEGIES["buy_and_hold"]
    first = strategy.decide(make_view({"A": [10.0], "B": [30.0]}, cash=100.0, tick=3))
    assert first.orders == [TradeOrder("A", "buy", 5), TradeOrder("B", "buy", 1)]
    assert first.state == {"bought": True, "bought_at": 3}

    later = strategy.decide(
        make_view({"A": [5.0], "B": [60.0]}, cash=20.0, positions={"A": 5}, state=first.state)
    )
    assert later.orders == []
    assert later.state == first.state
    assert "hold" in later.reasoning


def test_it_waits_to_buy_and_hold_until_it_can_afford_something() -> None:
    decision = STRATEGIES["buy_and_hold"].decide(make_view({"A": [10.0]}, cash=5.0))
    assert decision.orders == []
    assert "bought" not in decision.state


# -- momentum and mean reversion ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # A quarter of the cash at the current price: 250 / 110 and 250 / 90.
        ("momentum", TradeOrder("RISE", "buy", 2)),
        ("mean_reversion", TradeOrder("FALL", "buy", 2)),
    ],
)
def test_it_buys_what_the_strategy_believes_in(name: str, expected: TradeOrder) -> None:
    decision = STRATEGIES[name].decide(MARKET_VIEW)
    assert decision.orders == [expected]
    assert expected.symbol in decision.reasoning
    assert math.floor(MARKET_VIEW.cash * TRADE_FRACTION / MARKET_VIEW.prices[expected.symbol]) == 2


@pytest.mark.parametrize(
    ("name", "held", "sold"),
    [
        ("momentum", {"FALL": 4, "FLAT": 3}, "FALL"),
        ("mean_reversion", {"RISE": 4}, "RISE"),
        ("mean_reversion", {"FALL": 4}, None),  # still below its mean: keeps it
    ],
)
def test_it_sells_what_the_strategy_gave_up_on(
    name: str, held: dict[str, int], sold: str | None
) -> None:
    view = make_view({"RISE": RISING, "FALL": FALLING, "FLAT": FLAT}, positions=held)
    sells = [order for order in STRATEGIES[name].decide(view).orders if order.side == "sell"]
    assert sells == ([TradeOrder(sold, "sell", held[sold])] if sold else [])


def test_it_ignores_moves_under_the_momentum_threshold() -> None:
    small = 100 * (1 + MOMENTUM_THRESHOLD / 2)
    decision = STRATEGIES["momentum"].decide(make_view({"A": [100.0, small]}))
    assert decision.orders == []
    assert decision.reasoning == "momentum: no signal"


def test_it_needs_a_spread_to_revert_to_the_mean() -> None:
    decision = STRATEGIES["mean_reversion"].decide(make_view({"A": FLAT, "B": [100.0, 90.0]}))
    assert decision.orders == []


@pytest.mark.parametrize("name", ["momentum", "mean_reversion", "random", "buy_and_hold"])
def test_it_keeps_the_rest_of_the_state(name: str) -> None:
    decision = STRATEGIES[name].decide(make_view({"A": RISING}, state={"note": "mine"}))
    assert decision.state["note"] == "mine"


# -- random ------------------------------------------------------------------------------------


def test_it_trades_at_random_reproducibly() -> None:
    strategy = STRATEGIES["random"]
    symbols = "ABCDEFGHIJ"
    view = make_view(dict.fromkeys(symbols, RISING), positions=dict.fromkeys(symbols, 10))
    assert strategy.decide(view, seed=1) == strategy.decide(view, seed=1)
    decisions = [strategy.decide(view, seed=seed).orders for seed in range(20)]
    assert len({repr(orders) for orders in decisions}) > 10
    assert {order.side for orders in decisions for order in orders} == {"buy", "sell"}


def test_it_draws_new_numbers_each_decision() -> None:
    strategy = STRATEGIES["random"]
    history = dict.fromkeys("ABCDEFGHIJ", RISING)
    first = strategy.decide(make_view(history, tick=1), seed=3)
    assert first.state == {"decisions": 1}
    second = strategy.decide(make_view(history, tick=1, state=first.state), seed=3)
    assert second.state == {"decisions": 2}
    orders = [strategy.decide(make_view(history, tick=tick), seed=3).orders for tick in range(30)]
    assert len({repr(o) for o in orders}) > 5


# -- brain -------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["momentum", "mean_reversion", "hold"])
def test_it_trades_as_the_agents_brain_says(strategy: str) -> None:
    brain = get_brain("rules", {"strategy": strategy})
    view = make_view({"RISE": RISING, "FALL": FALLING}, positions={"FALL": 2, "RISE": 1})
    decision = STRATEGIES["brain"].decide(view, brain=brain)
    assert decision == brain.decide_trade(view=view)


def test_it_follows_the_default_rules_brain() -> None:
    decision = STRATEGIES["brain"].decide(MARKET_VIEW, brain=get_brain("rules", {}))
    # The rules brain buys the riser with a tenth of the cash: 100 / 110.
    assert decision.orders == []
    bigger = make_view({"RISE": RISING, "FALL": FALLING}, cash=10_000.0)
    decision = STRATEGIES["brain"].decide(bigger, brain=get_brain("rules", {}))
    assert decision.orders == [TradeOrder("RISE", "buy", 9)]
    assert decision.state["last_tick"] == bigger.tick


def test_it_needs_a_brain_for_the_brain_strategy() -> None:
    with pytest.raises(ValueError, match="needs the agent's brain"):
        STRATEGIES["brain"].decide(MARKET_VIEW)


class RecklessBrain(Brain):
    """A brain that ignores every rule, as a misbehaving language model might."""

    kind = "reckless"
    config_model = RulesConfig

    def respond(
        self, *, messages: list[ChatMessage], summary: str = "", agent_name: str = ""
    ) -> BrainReply:
        raise NotImplementedError

    def summarize(self, *, messages: list[ChatMessage], previous_summary: str = "") -> BrainReply:
        raise NotImplementedError

    def compose_post(self, *, topic: str, agent_name: str = "") -> BrainReply:
        raise NotImplementedError

    def decide_trade(self, *, view: TradeView) -> TradeDecision:
        orders: list[Any] = [
            TradeOrder("RISE", "buy", 10**9),
            TradeOrder("FALL", "sell", 5),
            TradeOrder("NOPE", "buy", 1),
            {"symbol": "FLAT", "side": "buy", "quantity": -3},
        ]
        return TradeDecision(orders, {"mood": "bold"}, "all in", 12, 34)


def test_it_keeps_a_reckless_brain_within_the_rules() -> None:
    decision = STRATEGIES["brain"].decide(MARKET_VIEW, brain=RecklessBrain())
    assert decision.orders == [TradeOrder("RISE", "buy", 9)]  # 1000 / 110
    assert decision.state == {"mood": "bold"}
    assert (decision.prompt_tokens, decision.completion_tokens) == (12, 34)
    assert decision.reasoning.startswith("all in; cut buy RISE")
    assert "dropped sell 5 FALL" in decision.reasoning


# -- the exchange ------------------------------------------------------------------------------

PRICES = {"A": 10.0, "B": 33.33, "C": 0.1}


@pytest.mark.parametrize(
    ("cash", "positions", "orders", "trades", "new_cash", "new_positions"),
    [
        pytest.param(
            100.0,
            {},
            [TradeOrder("B", "buy", 3)],
            [Trade("B", "buy", 3, 33.33)],
            0.01,
            {"B": 3},
            id="buy at the market price, to the cent",
        ),
        pytest.param(
            100.0,
            {},
            [TradeOrder("B", "buy", 4)],
            [Trade("B", "buy", 3, 33.33)],
            0.01,
            {"B": 3},
            id="buy cut to the cash",
        ),
        pytest.param(
            0.0,
            {"A": 10},
            [TradeOrder("B", "buy", 3), TradeOrder("A", "sell", 10)],
            [Trade("A", "sell", 10, 10.0), Trade("B", "buy", 3, 33.33)],
            0.01,
            {"B": 3},
            id="sells pay for buys, whatever the order",
        ),
        pytest.param(
            0.0,
            {"A": 5},
            [TradeOrder("A", "sell", 3), TradeOrder("A", "sell", 3)],
            [Trade("A", "sell", 3, 10.0), Trade("A", "sell", 2, 10.0)],
            50.0,
            {},
            id="sells cut to what is held, and spent positions removed",
        ),
        pytest.param(
            0.0,
            {},
            [TradeOrder("A", "buy", 1), TradeOrder("A", "sell", 1)],
            [],
            0.0,
            {},
            id="no selling what is bought in the same decision",
        ),
        pytest.param(
            0.3,
            {},
            [TradeOrder("C", "buy", 5)],
            [Trade("C", "buy", 3, 0.1)],
            0.0,
            {"C": 3},
            id="cents counted exactly: 0.3 buys three at 0.1",
        ),
        pytest.param(
            50.0,
            {"A": 1, "Z": 2},
            [
                TradeOrder("Z", "sell", 2),
                TradeOrder("Q", "buy", 1),
                TradeOrder("A", "hold", 1),
                TradeOrder("A", "buy", 0),
                TradeOrder("A", "buy", -2),
                TradeOrder("A", "sell", True),
                TradeOrder("A", "buy", 1.5),  # type: ignore[arg-type]
                None,
                "buy A",
            ],
            [],
            50.0,
            {"A": 1, "Z": 2},
            id="garbage dropped; unpriced holdings kept",
        ),
        pytest.param(
            50.0,
            {},
            [
                TradeOrder("A", " BUY ", 2.0),  # type: ignore[arg-type]
                {"symbol": "A", "side": "buy", "quantity": 1, "price": 0.01},
            ],
            [Trade("A", "buy", 2, 10.0), Trade("A", "buy", 1, 10.0)],
            20.0,
            {"A": 3},
            id="forgiving about forms; the price is always the market's",
        ),
    ],
)
def test_it_fills_orders(
    cash: float,
    positions: dict[str, int],
    orders: list[TradeOrder],
    trades: list[Trade],
    new_cash: float,
    new_positions: dict[str, int],
) -> None:
    fill = apply_orders(cash, positions, orders, PRICES)
    assert (fill.trades, fill.cash, fill.positions) == (trades, new_cash, new_positions)


def test_it_notes_what_it_dropped_or_cut() -> None:
    fill = apply_orders(
        20.0,
        {"A": 1},
        [TradeOrder("A", "sell", 4), TradeOrder("Q", "buy", 1), TradeOrder("B", "buy", 1)],
        PRICES,
    )
    assert fill.notes == [
        "dropped buy Q: no market price",
        "cut sell A from 4 to 1: not enough held",
        "dropped buy 1 B: not enough cash",  # 30.00 after the sale; B costs 33.33
    ]
    assert fill.trades == [Trade("A", "sell", 1, 10.0)]


@pytest.mark.parametrize(
    ("cash", "positions", "message"),
    [
        (-1.0, {}, "cash must not be negative"),
        (float("nan"), {}, "cash must be a finite number"),
        (10.0, {"A": -1}, "position in 'A'"),
        (10.0, {"A": 1.5}, "position in 'A'"),
    ],
)
def test_it_refuses_an_impossible_account(cash: float, positions: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_orders(cash, positions, [], PRICES)


@pytest.mark.parametrize(
    ("cash", "positions", "expected"),
    [
        (100.0, {}, 100.0),
        (0.1, {"A": 2, "B": 3}, 120.09),
        (0.0, {"A": 0, "Z": 0}, 0.0),  # nothing held needs no price
    ],
)
def test_it_values_an_account(cash: float, positions: dict[str, int], expected: float) -> None:
    assert equity(cash, positions, PRICES) == expected


def test_it_refuses_to_value_a_holding_without_a_price() -> None:
    with pytest.raises(ValueError, match="no price for 'Z'"):
        equity(0.0, {"Z": 1}, PRICES)


# -- invariants, whatever the orders -----------------------------------------------------------

SYMBOLS = ["A", "B", "C"]
prices_strategy = st.dictionaries(
    st.sampled_from(SYMBOLS),
    st.one_of(
        st.decimals("0.01", "1000", places=2).map(float),
        st.floats(1e-6, 1e9),
    ),
)
garbage_quantity = st.one_of(
    st.integers(-5, 50),
    st.integers(),
    st.just(10**30),
    st.floats(),
    st.booleans(),
    st.none(),
)
order_strategy = st.one_of(
    st.builds(
        TradeOrder,
        symbol=st.sampled_from([*SYMBOLS, "X", ""]),
        side=st.sampled_from(["buy", "sell", "BUY", " sell ", "short", ""]),
        quantity=garbage_quantity,
    ),
    st.fixed_dictionaries(
        {
            "symbol": st.sampled_from([*SYMBOLS, "X"]),
            "side": st.sampled_from(["buy", "sell"]),
            "quantity": garbage_quantity,
            "price": st.floats(),
        }
    ),
    st.none(),
    st.text(max_size=5),
)
cash_strategy = st.one_of(
    st.floats(0, 1e9),
    st.decimals("0", "100000", places=2).map(float),
    st.integers(0, 10**6),
)
positions_strategy = st.dictionaries(st.sampled_from([*SYMBOLS, "X"]), st.integers(0, 10**6))


def assert_fill_keeps_the_invariants(
    fill: Fill, cash: float, positions: dict[str, int], prices: dict[str, float]
) -> None:
    assert math.isfinite(fill.cash)
    assert fill.cash >= 0
    assert all(type(q) is int and q > 0 for q in fill.positions.values())
    sides = [trade.side for trade in fill.trades]
    assert sides == sorted(sides, key=lambda side: side == "buy")  # every sell first
    moved: Counter[str] = Counter()
    spent = 0.0
    for trade in fill.trades:
        assert trade.price == prices[trade.symbol]
        assert type(trade.quantity) is int
        assert trade.quantity > 0
        moved[trade.symbol] += trade.quantity if trade.side == "buy" else -trade.quantity
        spent += trade.quantity * trade.price * (1 if trade.side == "buy" else -1)
        # No sell takes more than was held before the decision.
        assert positions.get(trade.symbol, 0) + min(moved[trade.symbol], 0) >= 0
    for symbol in {*positions, *moved}:
        assert fill.positions.get(symbol, 0) == positions.get(symbol, 0) + moved[symbol]
    # Floats: the sum is exact to a few units in the last place of the largest amount moved
    # (a sale of 1.7e10 leaves 0.005 give or take 4e-6).
    moved_value = cash + sum(trade.quantity * trade.price for trade in fill.trades)
    assert fill.cash == pytest.approx(cash - spent, rel=1e-9, abs=max(1e-6, moved_value * 1e-15))


@settings(max_examples=300, deadline=None)
@given(
    cash=cash_strategy,
    positions=positions_strategy,
    orders=st.lists(order_strategy, max_size=12),
    prices=prices_strategy,
)
def test_it_keeps_the_invariants_whatever_the_orders(
    cash: float, positions: dict[str, int], orders: list[Any], prices: dict[str, float]
) -> None:
    fill = apply_orders(cash, positions, orders, prices)
    assert_fill_keeps_the_invariants(fill, cash, positions, prices)


@settings(max_examples=100, deadline=None)
@given(
    cash=st.decimals("0", "100", places=2).map(float),
    price=st.decimals("0.01", "10", places=2).map(float),
)
def test_it_spends_down_to_the_last_cent(cash: float, price: float) -> None:
    fill = apply_orders(cash, {}, [TradeOrder("A", "buy", 10**9)], {"A": price})
    assert 0 <= fill.cash < price
    assert fill.cash == round(fill.cash, 2)


# -- invariants, whatever the view -------------------------------------------------------------

history_strategy = st.lists(
    st.one_of(st.floats(0.01, 1000), st.sampled_from([0.0, -1.0, math.nan, math.inf])),
    max_size=25,
)
state_strategy: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"bought": st.booleans(), "bought_at": st.integers(0, 100)}),
    st.fixed_dictionaries({"decisions": st.one_of(st.integers(0, 10**6), st.text(max_size=3))}),
)


@st.composite
def views(draw: st.DrawFn) -> TradeView:
    symbols = draw(st.lists(st.sampled_from([*SYMBOLS, "D", "E"]), unique=True, max_size=5))
    prices = {
        symbol: draw(st.one_of(st.floats(0.01, 1e5), st.sampled_from([0.0, -5.0, math.nan])))
        for symbol in symbols
    }
    return TradeView(
        cash=draw(cash_strategy),
        positions=draw(st.dictionaries(st.sampled_from([*SYMBOLS, "D", "X"]), st.integers(0, 99))),
        prices=prices,
        history={symbol: draw(history_strategy) for symbol in symbols},
        state=draw(state_strategy),
        tick=draw(st.integers(0, 10**6)),
    )


RULES_BRAIN = get_brain("rules", {})


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=100, deadline=None)
@given(view=views(), seed=st.integers())
def test_it_keeps_every_strategy_within_the_rules(name: str, view: TradeView, seed: int) -> None:
    strategy = STRATEGIES[name]
    decision = strategy.decide(view, seed=seed, brain=RULES_BRAIN)
    assert decision == strategy.decide(view, seed=seed, brain=RULES_BRAIN)
    # Already within clamp_orders' limits: clamping changes nothing.
    assert clamp_orders(decision.orders, view) == (decision.orders, [])
    for order in decision.orders:
        assert view.prices[order.symbol] > 0
        assert order.quantity > 0
    json.dumps(decision.state)  # storable
    fill = apply_orders(view.cash, view.positions, decision.orders, view.prices)
    assert_fill_keeps_the_invariants(fill, view.cash, view.positions, view.prices)
    # Sells are whole numbers against whole holdings: filled exactly as decided. (A buy could
    # still be cut by a cent's rounding: clamp_orders counts in floats, the exchange exactly.)
    assert [t for t in fill.trades if t.side == "sell"] == [
        Trade(o.symbol, "sell", o.quantity, view.prices[o.symbol])
        for o in decision.orders
        if o.side == "sell"
    ]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_it_runs_every_strategy_through_a_market(name: str) -> None:
    market = Market(
        5,
        ["ACME", "GLOBEX", "INITECH"],
        start=datetime(2025, 1, 1, tzinfo=UTC),
        tick_seconds=60,
        volatility=0.01,
    )
    cash, positions, state = 10_000.0, dict[str, int](), dict[str, Any]()
    traded = 0
    for tick in range(300):
        view = market.view(tick=tick, cash=cash, positions=positions, state=state)
        decision = STRATEGIES[name].decide(view, seed=9, brain=RULES_BRAIN)
        fill = apply_orders(cash, positions, decision.orders, view.prices)
        assert fill.notes == []
        assert_fill_keeps_the_invariants(fill, cash, positions, view.prices)
        cash, positions, state = fill.cash, fill.positions, decision.state
        traded += len(fill.trades)
    assert traded > 0
    assert equity(cash, positions, market.prices_at(299)) > 0
