"""The brains' settings (agents/brains): each kind's defaults filled in, every invalid field named
(all at once), unknown kinds refused, and a brain built by its kind.
"""

from __future__ import annotations

from typing import Any

import pytest

from agents.brains import BRAINS, Brain, BrainConfigError, get_brain, validate_brain_config

# -- configs ---------------------------------------------------------------------------------


def test_it_fills_rules_defaults() -> None:
    assert validate_brain_config("rules", {}) == {
        "greeting": "Hello! How can I help?",
        "keywords": {},
        "echo": True,
        "post_template": (
            "{agent} on {topic}: here is what I think matters most about {topic} today."
        ),
        "summary_sentences": 3,
        "strategy": "momentum",
        "trade_fraction": 0.1,
    }
    assert validate_brain_config("rules", None) == validate_brain_config("rules", {})


def test_it_fills_openai_defaults_leaving_settings_defaults_open() -> None:
    assert validate_brain_config("openai", {}) == {
        "model": None,
        "temperature": 0.7,
        "max_tokens": 512,
        "system_prompt": "You are {agent}, a helpful assistant.",
        "timeout": None,
    }


def test_it_keeps_valid_values() -> None:
    config = {"keywords": {"price": "Free!"}, "strategy": "hold", "trade_fraction": 1}

    assert validate_brain_config("rules", config) | config == validate_brain_config("rules", config)
    assert validate_brain_config("openai", {"model": "m", "timeout": 2})["timeout"] == 2.0


@pytest.mark.parametrize(
    ("kind", "config", "field", "words"),
    [
        ("rules", {"greeting": ""}, "greeting", "at least 1"),
        ("rules", {"keywords": ["hi"]}, "keywords", "dictionary"),
        ("rules", {"keywords": {"  ": "x"}}, "keywords", "must contain a word"),
        ("rules", {"keywords": {"hi": 3}}, "keywords.hi", "string"),
        ("rules", {"echo": "maybe"}, "echo", "boolean"),
        ("rules", {"post_template": "{agent} says hi"}, "post_template", "{topic}"),
        ("rules", {"post_template": "{topic} by {author}"}, "post_template", "{agent}"),
        ("rules", {"post_template": "{topic} {"}, "post_template", "braces"),
        ("rules", {"summary_sentences": 0}, "summary_sentences", "greater than or equal to 1"),
        ("rules", {"summary_sentences": 21}, "summary_sentences", "less than or equal to 20"),
        ("rules", {"strategy": "yolo"}, "strategy", "'momentum', 'mean_reversion' or 'hold'"),
        ("rules", {"trade_fraction": 0}, "trade_fraction", "greater than 0"),
        ("rules", {"trade_fraction": 1.5}, "trade_fraction", "less than or equal to 1"),
        ("rules", {"greetng": "hi"}, "greetng", "unknown setting (allowed: greeting,"),
        ("rules", [1, 2], "brain_config", "must be a JSON object, not list"),
        ("openai", {"model": ""}, "model", "at least 1"),
        ("openai", {"temperature": 2.5}, "temperature", "less than or equal to 2"),
        ("openai", {"temperature": -1}, "temperature", "greater than or equal to 0"),
        ("openai", {"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ("openai", {"max_tokens": 40000}, "max_tokens", "less than or equal to 32768"),
        ("openai", {"timeout": 0}, "timeout", "greater than 0"),
        ("openai", {"system_prompt": "You are {name}"}, "system_prompt", "{agent}"),
        ("openai", {"api_key": "sk-x"}, "api_key", "unknown setting (allowed: model,"),
        ("openai", "model=x", "brain_config", "must be a JSON object, not str"),
    ],
)
def test_it_names_the_invalid_field(kind: str, config: Any, field: str, words: str) -> None:
    with pytest.raises(BrainConfigError) as caught:
        validate_brain_config(kind, config)

    assert field in caught.value.errors, caught.value.errors
    assert words in caught.value.errors[field]
    assert f"{field}: " in str(caught.value)
    with pytest.raises(BrainConfigError):
        get_brain(kind, config)


def test_it_names_every_invalid_field_at_once() -> None:
    with pytest.raises(BrainConfigError) as caught:
        validate_brain_config(
            "rules", {"summary_sentences": 99, "strategy": "x", "post_template": "no", "bad": 1}
        )

    assert set(caught.value.errors) == {"summary_sentences", "strategy", "post_template", "bad"}
    assert str(caught.value).startswith("invalid brain config: ")


@pytest.mark.parametrize("kind", ["x", "", "RULES"])
def test_it_refuses_unknown_brains(kind: str) -> None:
    with pytest.raises(BrainConfigError) as caught:
        get_brain(kind, {})

    assert caught.value.errors == {"brain": f"unknown brain {kind!r} (rules, openai)"}
    with pytest.raises(BrainConfigError):
        validate_brain_config(kind, {})


def test_it_builds_each_brain_by_kind() -> None:
    assert set(BRAINS) == {"rules", "openai"}
    for kind, cls in BRAINS.items():
        brain = get_brain(kind, {})
        assert isinstance(brain, cls)
        assert isinstance(brain, Brain)
        assert brain.kind == kind
