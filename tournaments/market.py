"""A deterministic simulated market: one price feed per symbol, reproducible from a seed. Pure.

Prices follow geometric Brownian motion on integer ticks (tick 0 at `start`, one tick every
`tick_seconds`):

    price(s, t) = P0(s) * exp((drift - volatility**2 / 2) * t + volatility * W_s(t))

where W_s is a standard Brownian motion sampled at integer ticks (W_s(0) = 0, independent N(0, 1)
steps) and `drift` and `volatility` are per tick. The result is rounded to cents (a float with
two decimals) and kept within [MIN_PRICE, MAX_PRICE], so a price is always > 0.

W_s(t) is built by Lévy's construction (a Brownian bridge) rather than by summing t steps, so any
tick is computed in O(log t) without walking the path: ticks are grouped in blocks of BLOCK
ticks; block ends are a random walk with N(0, BLOCK) steps, and inside a block W is fixed by
halving intervals, the midpoint of [lo, hi] being the average of its ends plus an
N(0, (hi - lo) / 4) shock. The resulting steps W(t) - W(t - 1) are exactly i.i.d. N(0, 1).

Every shock is a counter-based draw: blake2b of (seed, symbol, node) -> a uniform -> a normal by
the inverse CDF. Python's `hash()` is salted per process and never used, so a price is a pure
function of (seed, symbol, tick, parameters): the same in every process, run and machine (up to
libm's last-bit differences, which rounding to cents hides in practice). This is what lets anyone
check a tournament's results.

Computed values are cached (bounded, oldest first out), so the views of many entries at the same
tick, or consecutive ticks, cost little after the first.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any, TypeVar

from agents.brains.base import TradeView

MIN_PRICE = 0.01
MAX_PRICE = 1_000_000_000.0
# The default first price of a symbol is drawn uniformly from this range.
INITIAL_PRICE_RANGE = (20.0, 500.0)
DEFAULT_HISTORY_LENGTH = 20
BLOCK_BITS = 16
BLOCK = 1 << BLOCK_BITS

_MAX_LOG_PRICE = math.log(MAX_PRICE)
_STANDARD_NORMAL = NormalDist()
_ONE_MICROSECOND = timedelta(microseconds=1)
_CACHE_SIZE = 100_000
_TICK_CACHE_SIZE = 4_096

_K = TypeVar("_K")
_V = TypeVar("_V")


class Market:
    """Prices of `symbols` at every tick from `start`, reproducible from `seed`."""

    def __init__(
        self,
        seed: int,
        symbols: Sequence[str],
        *,
        start: datetime,
        tick_seconds: float,
        initial_prices: Mapping[str, float] | None = None,
        drift: float = 0.0,
        volatility: float = 0.02,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, not {seed!r}")
        names = _checked_symbols(symbols)
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be an aware datetime")
        tick_microseconds = _checked_tick_microseconds(tick_seconds)
        if not math.isfinite(drift):
            raise ValueError(f"drift must be a finite number, not {drift!r}")
        if not math.isfinite(volatility) or volatility < 0:
            raise ValueError(f"volatility must be a finite number >= 0, not {volatility!r}")
        given = _checked_initial_prices(initial_prices, names)

        self.seed = seed
        self.symbols = names
        self.start = start
        self.tick = timedelta(microseconds=tick_microseconds)
        self.drift = float(drift)
        self.volatility = float(volatility)
        self._hashers = {name: _hasher(seed, name) for name in names}
        self.initial_prices: dict[str, float] = {
            name: round(float(given[name]), 2) if name in given else self._default_price(name)
            for name in names
        }
        self._log_initial = {name: math.log(p) for name, p in self.initial_prices.items()}
        self._trend = self.drift - self.volatility**2 / 2
        self._block_ends: dict[str, list[float]] = {name: [0.0] for name in names}
        self._nodes: dict[str, dict[int, float]] = {name: {} for name in names}
        self._prices: dict[str, dict[int, float]] = {name: {} for name in names}
        self._ticks: dict[int, dict[str, float]] = {}
        self._histories: dict[tuple[int, int], dict[str, tuple[float, ...]]] = {}

    def __repr__(self) -> str:
        return (
            f"Market(seed={self.seed}, symbols={list(self.symbols)}, start={self.start!r}, "
            f"tick_seconds={self.tick_seconds}, drift={self.drift}, "
            f"volatility={self.volatility})"
        )

    @property
    def tick_seconds(self) -> float:
        return self.tick.total_seconds()

    # -- time ----------------------------------------------------------------------------------

    def tick_at(self, when: datetime) -> int:
        """The tick in progress at `when`: ticks start at their time; before `start` it is 0."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("when must be an aware datetime")
        elapsed = (when - self.start) // _ONE_MICROSECOND
        return max(elapsed // (self.tick // _ONE_MICROSECOND), 0)

    def time_of(self, tick: int) -> datetime:
        """When `tick` starts, in `start`'s time zone."""
        return self.start + self.tick * _check_tick(tick)

    # -- prices --------------------------------------------------------------------------------

    def price(self, symbol: str, tick: int) -> float:
        """The price of `symbol` at `tick`: a float rounded to cents, never below MIN_PRICE."""
        cache = self._prices.get(symbol)
        if cache is None:
            raise KeyError(f"unknown symbol {symbol!r} (the market has {list(self.symbols)})")
        # Checked before the cache, where True and 1.0 would find tick 1.
        price = cache.get(_check_tick(tick))
        if price is None:
            price = self._compute_price(symbol, tick)
            _remember(cache, tick, price, _CACHE_SIZE)
        return price

    def prices_at(self, tick: int) -> dict[str, float]:
        """Every symbol's price at `tick` (a fresh dict: callers may change it)."""
        prices = self._ticks.get(_check_tick(tick))
        if prices is None:
            prices = {name: self.price(name, tick) for name in self.symbols}
            _remember(self._ticks, tick, prices, _TICK_CACHE_SIZE)
        return dict(prices)

    def history(self, symbol: str, tick: int, length: int) -> list[float]:
        """The `length` prices of `symbol` up to and including `tick`, oldest first.

        Fewer near tick 0: there is no price before it.
        """
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be an integer >= 0, not {length!r}")
        first = max(_check_tick(tick) - length + 1, 0)
        return [self.price(symbol, t) for t in range(first, tick + 1)]

    def view(
        self,
        *,
        tick: int,
        cash: float,
        positions: Mapping[str, int],
        state: Mapping[str, Any] | None = None,
        history_length: int = DEFAULT_HISTORY_LENGTH,
    ) -> TradeView:
        """What a strategy sees at `tick`: prices, the last `history_length` prices of each
        symbol (current one included), and copies of the caller's cash, positions and state."""
        key = (_check_tick(tick), history_length)
        histories = self._histories.get(key)
        if histories is None:
            histories = {
                name: tuple(self.history(name, tick, history_length)) for name in self.symbols
            }
            _remember(self._histories, key, histories, _TICK_CACHE_SIZE)
        return TradeView(
            cash=float(cash),
            positions=dict(positions),
            prices=self.prices_at(tick),
            history={name: list(prices) for name, prices in histories.items()},
            state=dict(state or {}),
            tick=tick,
        )

    # -- the path ------------------------------------------------------------------------------

    def _compute_price(self, symbol: str, tick: int) -> float:
        if tick == 0:
            return self.initial_prices[symbol]
        log_price = self._log_initial[symbol] + self._trend * tick
        if self.volatility:
            log_price += self.volatility * self._brownian(symbol, tick)
        # Clamped before exp(), which would overflow for a large drift over a long horizon.
        log_price = min(log_price, _MAX_LOG_PRICE)
        return min(max(round(math.exp(log_price), 2), MIN_PRICE), MAX_PRICE)

    def _brownian(self, symbol: str, tick: int) -> float:
        """W(tick) for `symbol`: block ends by a random walk, the rest by bisection."""
        nodes = self._nodes[symbol]
        known = nodes.get(tick)
        if known is not None:
            return known
        block = tick >> BLOCK_BITS
        lo, hi = block << BLOCK_BITS, (block + 1) << BLOCK_BITS
        w_lo, w_hi = self._block_end(symbol, block), self._block_end(symbol, block + 1)
        # Every tick inside a block is the midpoint of exactly one interval of the bisection,
        # so its shock can be keyed by the tick alone.
        while True:
            if tick == lo:
                return w_lo
            if tick == hi:
                return w_hi
            mid = (lo + hi) >> 1
            w_mid = nodes.get(mid)
            if w_mid is None:
                shock = self._normal(symbol, b"w", mid)
                w_mid = (w_lo + w_hi) / 2 + math.sqrt(hi - lo) / 2 * shock
                _remember(nodes, mid, w_mid, _CACHE_SIZE)
            if tick < mid:
                hi, w_hi = mid, w_mid
            else:
                lo, w_lo = mid, w_mid

    def _block_end(self, symbol: str, block: int) -> float:
        ends = self._block_ends[symbol]
        scale = math.sqrt(BLOCK)
        while len(ends) <= block:
            ends.append(ends[-1] + scale * self._normal(symbol, b"b", len(ends)))
        return ends[block]

    def _normal(self, symbol: str, tag: bytes, index: int) -> float:
        return _STANDARD_NORMAL.inv_cdf(self._uniform(symbol, tag, index))

    def _uniform(self, symbol: str, tag: bytes, index: int) -> float:
        """A uniform in (0, 1), open at both ends (the inverse CDF is infinite at 0 and 1)."""
        hasher = self._hashers[symbol].copy()
        hasher.update(tag + b":" + str(index).encode())
        bits = int.from_bytes(hasher.digest(), "big") >> 11  # 53 bits: a double's precision
        return (bits + 0.5) / (1 << 53)

    def _default_price(self, symbol: str) -> float:
        low, high = INITIAL_PRICE_RANGE
        return round(low + (high - low) * self._uniform(symbol, b"p", 0), 2)


def _checked_symbols(symbols: Sequence[str]) -> tuple[str, ...]:
    """The market's symbols: unique non-empty names; ValueError otherwise."""
    if isinstance(symbols, str):
        raise ValueError("symbols must be a sequence of names, not one string")
    names = tuple(symbols)
    if not names:
        raise ValueError("a market needs at least one symbol")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"symbol names must be non-empty strings, not {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"symbols must be unique: {list(names)}")
    return names


def _checked_tick_microseconds(tick_seconds: float) -> int:
    """A tick's length in whole microseconds (at least one); ValueError otherwise."""
    if not math.isfinite(tick_seconds) or tick_seconds <= 0:
        raise ValueError(f"tick_seconds must be a positive number, not {tick_seconds!r}")
    # Whole microseconds, like datetime itself, so that tick_at(time_of(t)) == t exactly.
    tick_microseconds = round(tick_seconds * 1_000_000)
    if tick_microseconds < 1:
        raise ValueError("tick_seconds must be at least one microsecond")
    return tick_microseconds


def _checked_initial_prices(
    initial_prices: Mapping[str, float] | None, names: tuple[str, ...]
) -> dict[str, float]:
    """The first prices given, each of a symbol of `names` and within the price range."""
    given = dict(initial_prices or {})
    unknown = sorted(set(given) - set(names), key=str)
    if unknown:
        raise ValueError(f"initial prices for symbols not in the market: {unknown}")
    for name, price in given.items():
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise ValueError(f"initial price of {name} must be a number, not {price!r}")
        if not math.isfinite(price) or price < MIN_PRICE or price > MAX_PRICE:
            raise ValueError(
                f"initial price of {name} must be within {MIN_PRICE}..{MAX_PRICE:.0f}, "
                f"not {price!r}"
            )
    return given


def _hasher(seed: int, symbol: str) -> hashlib.blake2b:
    # The symbol's length makes the prefix unambiguous whatever characters the name holds.
    prefix = f"{seed}:{len(symbol)}:{symbol}:".encode()
    hasher = hashlib.blake2b(digest_size=8, person=b"tournament-mkt")
    hasher.update(prefix)
    return hasher


def _check_tick(tick: int) -> int:
    if isinstance(tick, bool) or not isinstance(tick, int) or tick < 0:
        raise ValueError(f"tick must be an integer >= 0, not {tick!r}")
    return tick


def _remember(cache: dict[_K, _V], key: _K, value: _V, size: int) -> None:
    if len(cache) >= size:
        # Dicts keep insertion order: this drops the oldest entry. Another thread may drop it
        # first; that is harmless, since every value can be computed again, identically.
        with suppress(KeyError, RuntimeError, StopIteration):
            del cache[next(iter(cache))]
    cache[key] = value
