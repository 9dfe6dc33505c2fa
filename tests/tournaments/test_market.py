from __future__ import annotations

import itertools
import json
import math
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.brains.base import TradeView
from tournaments.market import BLOCK, MAX_PRICE, MIN_PRICE, Market

BASE_DIR = Path(__file__).resolve().parents[2]
START = datetime(2025, 1, 1, tzinfo=UTC)
SYMBOLS = ["ACME", "GLOBEX", "INITECH"]


def market(seed: int = 42, symbols: list[str] | None = None, **options) -> Market:
    options.setdefault("start", START)
    options.setdefault("tick_seconds", 60)
    return Market(seed, SYMBOLS if symbols is None else symbols, **options)


# -- determinism -------------------------------------------------------------------------------


def test_it_gives_the_same_prices_for_the_same_seed() -> None:
    first, second = market(), market()
    ticks = range(300)
    assert [first.prices_at(t) for t in ticks] == [second.prices_at(t) for t in ticks]


def test_it_gives_the_same_price_whatever_was_asked_before() -> None:
    walked, jumped = market(), market()
    for tick in range(0, 70_000, 997):
        walked.price("ACME", tick)
    assert jumped.price("ACME", 70_001) == walked.price("ACME", 70_001)
    assert jumped.price("ACME", 5) == market().price("ACME", 5)


def test_it_gives_the_same_prices_in_a_fresh_process() -> None:
    ticks = [0, 1, 2, 999, BLOCK - 1, BLOCK, BLOCK + 1, 123_456]
    script = (
        "import json, sys\n"
        "from datetime import UTC, datetime\n"
        "from tournaments.market import Market\n"
        "m = Market(7, ['ACME', 'GLOBEX'], start=datetime(2025, 1, 1, tzinfo=UTC),"
        " tick_seconds=60, volatility=0.001)\n"
        f"print(json.dumps([m.prices_at(t) for t in {ticks!r}]))\n"
    )
    # A different hash seed would change hash() of the symbols: the prices must not care.
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    )
    here = market(7, ["ACME", "GLOBEX"], volatility=0.001)
    assert json.loads(result.stdout) == [here.prices_at(t) for t in ticks]


def test_it_keeps_the_prices_it_always_gave() -> None:
    # Pinned: changing the formula would make every past tournament's results uncheckable.
    m = market(42, ["ACME", "GLOBEX"], volatility=0.001)
    assert m.initial_prices == {"ACME": 416.85, "GLOBEX": 355.36}
    assert {t: m.price("ACME", t) for t in (1, 2, 3, 1000, 65536, 65537, 200_000)} == {
        1: 416.66,
        2: 417.27,
        3: 417.09,
        1000: 404.66,
        65536: 441.54,
        65537: 441.85,
        200_000: 266.46,
    }
    assert m.price("GLOBEX", 12345) == 370.59


def test_it_gives_different_prices_for_different_seeds() -> None:
    first, second = market(1), market(2)
    assert first.initial_prices != second.initial_prices
    assert first.history("ACME", 50, 50) != second.history("ACME", 50, 50)


def test_it_gives_each_symbol_its_own_path() -> None:
    m = market(initial_prices={"ACME": 100.0, "GLOBEX": 100.0})
    assert m.history("ACME", 50, 50) != m.history("GLOBEX", 50, 50)


def test_it_does_not_depend_on_the_other_symbols() -> None:
    alone = market(symbols=["ACME"])
    assert alone.history("ACME", 100, 100) == market().history("ACME", 100, 100)


# -- prices ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(-(2**63), 2**63),
    tick=st.integers(0, 10**8),
    drift=st.floats(-0.05, 0.05),
    volatility=st.floats(0, 0.5),
)
def test_it_keeps_prices_positive_and_in_cents(
    seed: int, tick: int, drift: float, volatility: float
) -> None:
    m = market(seed, drift=drift, volatility=volatility)
    for price in m.prices_at(tick).values():
        assert MIN_PRICE <= price <= MAX_PRICE
        assert price == round(price, 2)


def test_it_stays_positive_over_a_long_random_walk() -> None:
    m = market(3, volatility=0.05)
    prices = [m.price("ACME", t) for t in range(20_000)]
    assert min(prices) >= MIN_PRICE


@pytest.mark.parametrize(
    ("drift", "expected"),
    [(5.0, MAX_PRICE), (-5.0, MIN_PRICE)],
)
def test_it_clamps_runaway_prices(drift: float, expected: float) -> None:
    assert market(drift=drift).price("ACME", 10**6) == expected


def test_it_starts_at_the_initial_price() -> None:
    m = market(initial_prices={"ACME": 123.456})
    assert m.price("ACME", 0) == 123.46
    assert 20 <= m.price("GLOBEX", 0) <= 500
    assert m.initial_prices["GLOBEX"] == market().initial_prices["GLOBEX"]


def test_it_follows_the_drift_without_volatility() -> None:
    m = market(initial_prices={"ACME": 100.0}, drift=0.001, volatility=0.0)
    assert m.price("ACME", 1000) == round(100 * math.exp(1.0), 2)


def test_it_moves_like_geometric_brownian_motion() -> None:
    volatility, drift = 0.01, 0.0002
    m = market(11, initial_prices={"ACME": 100.0}, drift=drift, volatility=volatility)
    prices = [m.price("ACME", t) for t in range(5001)]
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    assert statistics.stdev(returns) == pytest.approx(volatility, rel=0.05)
    # The mean of 5,000 returns has a standard error of volatility / sqrt(5000), about 0.00014.
    assert statistics.fmean(returns) == pytest.approx(drift - volatility**2 / 2, abs=0.0005)


def test_it_names_an_unknown_symbol() -> None:
    with pytest.raises(KeyError, match="UMBRELLA"):
        market().price("UMBRELLA", 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"symbols": []}, "at least one symbol"),
        ({"symbols": ["A", "A"]}, "unique"),
        ({"symbols": "ABC"}, "not one string"),
        ({"symbols": ["A", ""]}, "non-empty"),
        ({"start": datetime(2025, 1, 1)}, "aware"),  # noqa: DTZ001
        ({"tick_seconds": 0}, "tick_seconds"),
        ({"tick_seconds": float("nan")}, "tick_seconds"),
        ({"tick_seconds": 1e-9}, "microsecond"),
        ({"volatility": -0.1}, "volatility"),
        ({"drift": float("inf")}, "drift"),
        ({"initial_prices": {"UMBRELLA": 10.0}}, "not in the market"),
        ({"initial_prices": {"ACME": 0.0}}, "initial price of ACME"),
        ({"initial_prices": {"ACME": float("nan")}}, "initial price of ACME"),
    ],
)
def test_it_rejects_bad_parameters(options: dict, message: str) -> None:
    symbols = options.pop("symbols", SYMBOLS)
    with pytest.raises(ValueError, match=message):
        market(symbols=symbols, **options)


@pytest.mark.parametrize("tick", [-1, 1.5, 1.0, True])
def test_it_rejects_bad_ticks(tick: int) -> None:
    m = market()
    m.view(tick=1, cash=0, positions={})  # tick 1 cached: True == 1.0 == 1 as a key
    with pytest.raises(ValueError, match="tick"):
        m.price("ACME", tick)
    with pytest.raises(ValueError, match="tick"):
        m.prices_at(tick)
    with pytest.raises(ValueError, match="tick"):
        m.view(tick=tick, cash=0, positions={})


# -- time --------------------------------------------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("tick_seconds", "when", "tick"),
    [
        (60, START - timedelta(days=3), 0),
        (60, START - timedelta(microseconds=1), 0),
        (60, START, 0),
        (60, START + timedelta(seconds=59, microseconds=999_999), 0),
        (60, START + timedelta(seconds=60), 1),
        (60, START + timedelta(seconds=61), 1),
        (60, START + timedelta(hours=1), 60),
        (60, datetime(2025, 1, 1, 1, 2, tzinfo=PARIS), 2),  # 00:02 UTC
        (0.5, START + timedelta(seconds=1.49), 2),
        (0.5, START + timedelta(seconds=1.5), 3),
        (86400, START + timedelta(days=365), 365),
    ],
)
def test_it_maps_a_time_to_its_tick(tick_seconds: float, when: datetime, tick: int) -> None:
    assert market(tick_seconds=tick_seconds).tick_at(when) == tick


@pytest.mark.parametrize(
    ("tick_seconds", "tick", "when"),
    [
        (60, 0, START),
        (60, 1, START + timedelta(minutes=1)),
        (0.5, 3, START + timedelta(seconds=1.5)),
        (3600, 24 * 365, START + timedelta(days=365)),
    ],
)
def test_it_maps_a_tick_to_its_start(tick_seconds: float, tick: int, when: datetime) -> None:
    assert market(tick_seconds=tick_seconds).time_of(tick) == when


@given(
    tick_seconds=st.floats(0.001, 86400),
    tick=st.integers(0, 10**5),  # a day a tick for 10**5 ticks: 270 years, within datetime
)
def test_it_finds_the_tick_of_its_own_start(tick_seconds: float, tick: int) -> None:
    m = market(tick_seconds=tick_seconds)
    start = m.time_of(tick)
    assert m.tick_at(start) == tick
    assert m.tick_at(start - timedelta(microseconds=1)) == max(tick - 1, 0)


def test_it_rejects_a_naive_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        market().tick_at(datetime(2025, 1, 1))  # noqa: DTZ001


# -- histories and views -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tick", "length", "expected"),
    [
        (0, 20, 1),
        (1, 20, 2),
        (18, 20, 19),
        (19, 20, 20),
        (20, 20, 20),
        (10_000, 20, 20),
        (5, 1, 1),
        (5, 0, 0),
    ],
)
def test_it_shortens_histories_near_tick_zero(tick: int, length: int, expected: int) -> None:
    assert len(market().history("ACME", tick, length)) == expected


def test_it_ends_a_history_with_the_current_price() -> None:
    m = market()
    assert m.history("ACME", 30, 5) == [m.price("ACME", t) for t in range(26, 31)]


def test_it_builds_a_view() -> None:
    m = market()
    state = {"bought": True}
    view = m.view(tick=40, cash=1000, positions={"ACME": 3}, state=state, history_length=10)
    assert view == TradeView(
        cash=1000.0,
        positions={"ACME": 3},
        prices=m.prices_at(40),
        history={symbol: m.history(symbol, 40, 10) for symbol in SYMBOLS},
        state={"bought": True},
        tick=40,
    )
    assert view.state is not state
    assert len(m.view(tick=40, cash=0, positions={}).history["ACME"]) == 20


def test_it_keeps_its_prices_when_a_view_is_changed() -> None:
    m = market()
    view = m.view(tick=40, cash=0, positions={})
    expected = m.prices_at(40), m.history("ACME", 40, 20)
    view.prices["ACME"] = -1
    view.history["ACME"].append(-1)
    again = m.view(tick=40, cash=0, positions={})
    assert (again.prices, again.history["ACME"]) == expected


def test_it_serves_many_views_of_one_tick_cheaply() -> None:
    m = market(symbols=[f"S{n}" for n in range(10)])
    m.view(tick=10_000, cash=0, positions={})
    began = time.perf_counter()
    for entry in range(1000):
        m.view(tick=10_000, cash=1000.0, positions={"S1": entry}, state={"n": entry})
    per_view = (time.perf_counter() - began) / 1000
    # Generous: about 10 microseconds on a laptop; the bound only catches recomputing prices.
    assert per_view < 0.001
