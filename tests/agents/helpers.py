"""What the agents' tests share: the API's agents and sessions (with a known webhook secret) and
its signed inbound deliveries; the brains' chat messages and a market to trade in."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.test import APIClient

from agents.brains import ChatMessage, TradeOrder, TradeView
from agents.models import Agent, Mention, Message, Session
from agents.signatures import sign
from tests.factories import make_agent, make_session

# --- the REST API --------------------------------------------------------------------------------

SECRET = "inbound-secret-for-tests"


def api_agent(name: str = "Helper", **fields: Any) -> Agent:
    """An agent whose inbound webhook secret is SECRET."""
    agent = make_agent(name, **fields)
    Agent.objects.filter(pk=agent.pk).update(webhook_secret=SECRET)
    agent.webhook_secret = SECRET
    return agent


def api_session(agent: Agent | None = None, **fields: Any) -> Session:
    return make_session(agent or api_agent(), **fields)


def post_inbound(
    slug: str, payload: Any, *, secret: str = SECRET, raw: bytes | None = None, **headers: Any
) -> Any:
    """`payload` (or `raw`) delivered to the agent's inbound webhook, signed with `secret`
    unless `headers` give the signature."""
    body = raw if raw is not None else json.dumps(payload).encode()
    headers.setdefault("HTTP_X_AGENT_SIGNATURE", sign(secret, body))
    return APIClient().post(
        f"/api/inbound/{slug}/", data=body, content_type="application/json", **headers
    )


def inbound_message(**fields: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "conversation": "chat-42",
        "message_id": "1001",
        "text": "Hello there",
        "channel": "telegram",
        **fields,
    }


def stored_counts() -> tuple[int, int, int]:
    return Session.objects.count(), Message.objects.count(), Mention.objects.count()


# --- the brains ----------------------------------------------------------------------------------


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


# A market the trading tests decide in.
MARKET = TradeView(
    cash=1000.0,
    positions={"FALL": 4, "RISE": 2},
    prices={"FALL": 8.0, "RISE": 30.0, "UP": 12.0, "FLAT": 5.0},
    history={
        "FALL": [10.0, 9.0],  # -20 %
        "RISE": [20.0, 25.0],  # +50 %
        "UP": [10.0, 11.0],  # +20 %
        "FLAT": [5.0, 5.0],
    },
    state={"memo": "keep me"},
    tick=3,
)


def assert_fillable(view: TradeView, orders: list[TradeOrder]) -> None:
    """Every order can be filled, one after another: cash and holdings never go below zero."""
    cash = view.cash
    positions = dict(view.positions)
    for order in orders:
        assert isinstance(order.quantity, int)
        assert order.quantity > 0
        assert order.side in {"buy", "sell"}
        assert order.symbol in view.prices
        price = view.prices[order.symbol]
        if order.side == "buy":
            cash -= order.quantity * price
            assert cash >= 0, (view, orders)
        else:
            positions[order.symbol] = positions.get(order.symbol, 0) - order.quantity
            assert positions[order.symbol] >= 0, (view, orders)
