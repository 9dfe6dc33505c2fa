"""Brains: what an agent thinks with. Pick one by its kind, with a validated config.

brain = get_brain("rules", {"keywords": {"price": "It is free."}})
reply = brain.respond(messages=[ChatMessage("user", "What is the price?")])
"""

from __future__ import annotations

from typing import Any

from agents.brains.base import (
    Brain,
    BrainConfigError,
    BrainReply,
    ChatMessage,
    TradeDecision,
    TradeOrder,
    TradeView,
    clamp_orders,
)
from agents.brains.openai import OpenAIBrain
from agents.brains.rules import RulesBrain

BRAINS: dict[str, type[Brain]] = {"rules": RulesBrain, "openai": OpenAIBrain}

__all__ = [
    "BRAINS",
    "Brain",
    "BrainConfigError",
    "BrainReply",
    "ChatMessage",
    "OpenAIBrain",
    "RulesBrain",
    "TradeDecision",
    "TradeOrder",
    "TradeView",
    "clamp_orders",
    "get_brain",
    "validate_brain_config",
]


def _brain_class(kind: str) -> type[Brain]:
    try:
        return BRAINS[kind]
    except (KeyError, TypeError):
        raise BrainConfigError({"brain": f"unknown brain {kind!r} ({', '.join(BRAINS)})"}) from None


def validate_brain_config(kind: str, config: Any) -> dict[str, Any]:
    """The normalised config (defaults filled), or BrainConfigError naming each bad field.

    Settings-backed defaults (the openai brain's model and timeout) stay None, so that a stored
    config follows the deployment's settings.
    """
    return _brain_class(kind).validate_config(config)


def get_brain(kind: str, config: Any) -> Brain:
    """A brain of `kind` built from `config`; BrainConfigError if either is wrong."""
    return _brain_class(kind)(config)
