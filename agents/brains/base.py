"""What every brain can do, the values it exchanges, and the checks every brain shares.

A brain is built from a validated config (a pydantic model with `extra="forbid"`, so a misspelt
key is named rather than ignored) and holds no other state: the caller passes the conversation,
the summary so far or the trading view each time, and stores what comes back.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

ROLES = frozenset({"system", "user", "assistant"})
SIDES = frozenset({"buy", "sell"})


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class BrainReply:
    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""


@dataclass(frozen=True)
class TradeView:
    """What a trading strategy sees on one tick of a tournament."""

    cash: float
    positions: dict[str, int]
    prices: dict[str, float]
    history: dict[str, list[float]]  # recent prices per symbol, oldest first
    state: dict[str, Any] = field(default_factory=dict)
    tick: int = 0


@dataclass(frozen=True)
class TradeOrder:
    symbol: str
    side: str  # "buy" or "sell"
    quantity: int  # > 0


@dataclass(frozen=True)
class TradeDecision:
    orders: list[TradeOrder]
    state: dict[str, Any]
    reasoning: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class BrainConfigError(ValueError):
    """A brain config that does not validate. `errors` maps a field ('keywords.hi') to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(self.errors)

    def __str__(self) -> str:
        details = "; ".join(f"{path}: {message}" for path, message in self.errors.items())
        return f"invalid brain config: {details}"


class BrainConfig(BaseModel):
    """Base of every brain's config model: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Brain(ABC):
    kind: ClassVar[str]
    config_model: ClassVar[type[BrainConfig]]

    def __init__(self, config: Any = None) -> None:
        self.config = self.parse_config(config)

    @classmethod
    def parse_config(cls, config: Any) -> Any:
        """The config model for `config` (None means all defaults); BrainConfigError if invalid."""
        if config is None:
            config = {}
        if isinstance(config, cls.config_model):
            return config
        if not isinstance(config, dict):
            raise BrainConfigError(
                {"brain_config": f"must be a JSON object, not {type(config).__name__}"}
            )
        try:
            return cls.config_model.model_validate(config)
        except ValidationError as exc:
            raise BrainConfigError(config_errors(exc, cls.config_model)) from exc

    @classmethod
    def validate_config(cls, config: Any) -> dict[str, Any]:
        """The normalised config as plain JSON values (defaults filled)."""
        return dict(cls.parse_config(config).model_dump(mode="json"))

    @abstractmethod
    def respond(
        self, *, messages: list[ChatMessage], summary: str = "", agent_name: str = ""
    ) -> BrainReply:
        """The next assistant message of a conversation."""

    @abstractmethod
    def summarize(self, *, messages: list[ChatMessage], previous_summary: str = "") -> BrainReply:
        """A summary of `messages` that carries on from `previous_summary`."""

    @abstractmethod
    def compose_post(self, *, topic: str, agent_name: str = "") -> BrainReply:
        """A post about `topic`."""

    @abstractmethod
    def decide_trade(self, *, view: TradeView) -> TradeDecision:
        """Orders for one tick; every order satisfies `clamp_orders`' invariants."""


def config_errors(exc: ValidationError, model: type[BaseModel]) -> dict[str, str]:
    errors: dict[str, str] = {}
    allowed = ", ".join(model.model_fields)
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "brain_config"
        if error["type"] == "extra_forbidden":
            message = f"unknown setting (allowed: {allowed})"
        else:
            message = error["msg"].removeprefix("Value error, ")
        errors[path] = f"{errors[path]}; {message}" if path in errors else message
    return errors


def usable_price(view: TradeView, symbol: str) -> float | None:
    price = view.prices.get(symbol)
    if isinstance(price, bool) or not isinstance(price, int | float):
        return None
    if not math.isfinite(price) or price <= 0:
        return None
    return float(price)


def affordable_quantity(cash: float, price: float) -> int:
    """The most whole units `cash` pays for at `price` (never more, despite float rounding)."""
    if cash <= 0 or price <= 0 or not math.isfinite(cash):
        return 0
    quantity = math.floor(cash / price)
    while quantity > 0 and quantity * price > cash:
        quantity -= 1
    return max(quantity, 0)


def clamp_orders(raw_orders: Iterable[Any], view: TradeView) -> tuple[list[TradeOrder], list[str]]:
    """Orders that can be filled against `view`, and a note for each one dropped or cut.

    Applied in order: a sell never takes more than is held (after earlier sells), a buy never
    spends more than the cash left by earlier buys. Proceeds of sells are not counted, so the
    result holds however the exchange orders the fills. Accepts TradeOrder or order-like dicts.
    """
    cash = float(view.cash) if math.isfinite(view.cash) else 0.0
    held = {symbol: max(int(quantity), 0) for symbol, quantity in view.positions.items()}
    orders: list[TradeOrder] = []
    notes: list[str] = []
    for raw in raw_orders:
        parts = order_parts(raw, notes)
        if parts is None:
            continue
        symbol, side, asked = parts
        price = usable_price(view, symbol)
        if price is None:
            notes.append(f"dropped {side} {symbol}: no price")
            continue
        quantity = whole_quantity(asked, side=side, symbol=symbol, notes=notes)
        if quantity is None:
            continue
        allowed = held.get(symbol, 0) if side == "sell" else affordable_quantity(cash, price)
        quantity = clamped_quantity(quantity, allowed, side=side, symbol=symbol, notes=notes)
        if quantity == 0:
            continue
        if side == "sell":
            held[symbol] = held.get(symbol, 0) - quantity
        else:
            cash -= quantity * price
        orders.append(TradeOrder(symbol=symbol, side=side, quantity=quantity))
    return orders, notes


def order_parts(raw: Any, notes: list[str]) -> tuple[str, str, Any] | None:
    """(symbol, side, quantity as given) of an order, a TradeOrder or an order-like mapping,
    whose side is buy or sell; None, with a note saying why, for anything else."""
    symbol: Any
    side: Any
    quantity: Any
    if isinstance(raw, TradeOrder):
        symbol, side, quantity = raw.symbol, raw.side, raw.quantity
    elif isinstance(raw, Mapping):
        symbol, side, quantity = raw.get("symbol"), raw.get("side"), raw.get("quantity")
    else:
        notes.append(f"dropped {raw!r}: not an order")
        return None
    if isinstance(side, str):
        side = side.strip().lower()
    if not isinstance(symbol, str) or side not in SIDES:
        notes.append(f"dropped {raw!r}: needs a symbol and a side (buy or sell)")
        return None
    return symbol, side, quantity


def whole_quantity(quantity: Any, *, side: str, symbol: str, notes: list[str]) -> int | None:
    """`quantity` as a positive whole number (2.0 is 2), or None with a note."""
    if isinstance(quantity, float) and quantity.is_integer():
        quantity = int(quantity)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        notes.append(f"dropped {side} {symbol}: quantity must be a positive whole number")
        return None
    return quantity


def clamped_quantity(
    quantity: int, allowed: int, *, side: str, symbol: str, notes: list[str]
) -> int:
    """At most `allowed` (what is held, for a sell; what the cash buys, for a buy), with a note
    when cut; 0 when nothing is allowed."""
    lacking = "not enough held" if side == "sell" else "not enough cash"
    if allowed <= 0:
        notes.append(f"dropped {side} {quantity} {symbol}: {lacking}")
        return 0
    if quantity > allowed:
        notes.append(f"cut {side} {symbol} from {quantity} to {allowed}: {lacking}")
        return allowed
    return quantity


def count_words(text: str) -> int:
    """Stand-in token count for brains without a tokenizer: whitespace-separated words."""
    return len(text.split())
