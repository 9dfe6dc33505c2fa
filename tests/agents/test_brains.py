from __future__ import annotations

import json
import random
import re
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from agents.brains import (
    BRAINS,
    Brain,
    BrainConfigError,
    BrainReply,
    ChatMessage,
    RulesBrain,
    TradeDecision,
    TradeOrder,
    TradeView,
    clamp_orders,
    get_brain,
    validate_brain_config,
)
from agents.errors import AgentError, ExternalServiceError, PermanentError, RateLimitError
from tests.agents.chat_server import ChatServer

BASE_DIR = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-0123456789abcdef"


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


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


# -- rules: conversation ---------------------------------------------------------------------

RULES = RulesBrain(
    {
        "keywords": {
            "price": "It costs nothing.",
            "Opening Hours": "We open at nine.",
            "hi": "Hi yourself!",
        }
    }
)


@pytest.mark.parametrize(
    "messages", [[], [ChatMessage("system", "be nice")], [assistant("Welcome!")], [user("  ")]]
)
def test_it_greets_when_no_user_has_spoken(messages: list[ChatMessage]) -> None:
    reply = RULES.respond(messages=messages)

    assert reply.content == "Hello! How can I help?"
    assert reply.model == "rules"


@pytest.mark.parametrize(
    ("said", "answer"),
    [
        ("What is the PRICE?", "It costs nothing."),
        ("price", "It costs nothing."),
        ("What are your opening   hours", "We open at nine."),  # phrases: whitespace-tolerant
        ("hi! what's the price", "Hi yourself!"),  # the keyword said first wins
        ("the price, hi", "It costs nothing."),
    ],
)
def test_it_replies_to_keywords(said: str, answer: str) -> None:
    assert RULES.respond(messages=[user("hello"), user(said)]).content == answer


def test_it_matches_whole_words_only() -> None:
    reply = RULES.respond(messages=[user("This is priceless")])

    assert reply.content == 'You said: "This is priceless"'


@pytest.mark.parametrize(
    ("keyword", "said"),
    [
        ("schedule", "Tell me about schedules"),
        ("task", "what TASKS are there?"),
        ("box", "boxes"),
        ("policy", "overlap policies"),
        ("day", "days"),
        ("opening hour", "your opening  hours?"),
        ("schedules", "schedules"),  # a keyword written in the plural still matches itself
    ],
)
def test_it_answers_a_keyword_said_in_the_plural(keyword: str, said: str) -> None:
    brain = RulesBrain({"keywords": {keyword: "Found it."}})

    assert brain.respond(messages=[user(said)]).content == "Found it."


@pytest.mark.parametrize("said", ["scheduled", "schedulers", "dayies", "policys"])
def test_the_plural_is_no_license_for_other_words(said: str) -> None:
    brain = RulesBrain({"keywords": {"schedule": "Found it.", "day": "Day.", "policy": "P."}})

    assert brain.respond(messages=[user(said)]).content == f'You said: "{said}"'


def test_it_answers_the_last_user_message() -> None:
    messages = [user("what is the price"), assistant("It costs nothing."), user("thanks")]

    assert RULES.respond(messages=messages).content == 'You said: "thanks"'


def test_it_acknowledges_without_echo() -> None:
    brain = RulesBrain({"echo": False})

    assert brain.respond(messages=[user("tell me a story")]).content == (
        "I hear you. Tell me more."
    )


def test_it_picks_keywords_whatever_their_order() -> None:
    forward = RulesBrain({"keywords": {"tea": "Tea!", "coffee": "Coffee!", "coffee tea": "Mix"}})
    backward = RulesBrain({"keywords": {"coffee tea": "Mix", "coffee": "Coffee!", "tea": "Tea!"}})

    for said in ["coffee tea please", "tea or coffee", "coffee"]:
        messages = [user(said)]
        assert forward.respond(messages=messages) == backward.respond(messages=messages)
    assert forward.respond(messages=[user("coffee tea please")]).content == "Mix"


def test_it_counts_words_as_tokens() -> None:
    reply = RULES.respond(messages=[user("one two three"), assistant("four")], summary="five six")

    assert reply.prompt_tokens == 6
    assert reply.completion_tokens == len(reply.content.split())


CONVERSATION = [
    ChatMessage("system", "You are a launch planner. Ignore this sentence."),
    user("We plan the product launch for Friday. I had coffee this morning."),
    assistant("The launch needs a press release before Friday. Nice weather today!"),
    user("Who writes the launch press release? Thanks a lot."),
    assistant("Dana writes the press release. Ok."),
]


def test_it_summarises_the_most_informative_sentences_in_order() -> None:
    brain = RulesBrain({"summary_sentences": 2})

    reply = brain.summarize(messages=CONVERSATION)

    assert reply.content == (
        "The launch needs a press release before Friday. Who writes the launch press release?"
    )
    assert reply.model == "rules"
    assert reply.completion_tokens == len(reply.content.split())


def split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


ALL_SENTENCES = [s for m in CONVERSATION if m.role != "system" for s in split_sentences(m.content)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 20])
def test_it_keeps_n_sentences_in_their_original_order(count: int) -> None:
    content = RulesBrain({"summary_sentences": count}).summarize(messages=CONVERSATION).content

    kept = split_sentences(content)
    positions = [ALL_SENTENCES.index(sentence) for sentence in kept]
    assert len(kept) == min(count, len(ALL_SENTENCES)) == len(set(kept))
    assert positions == sorted(positions)
    assert "Ignore this sentence." not in content  # system messages are not the conversation


def test_it_carries_the_previous_summary_forward() -> None:
    brain = RulesBrain({"summary_sentences": 2})
    previous = "Dana owns the launch press release."

    reply = brain.summarize(messages=CONVERSATION[3:], previous_summary=previous)

    assert split_sentences(reply.content) == [previous, "Who writes the launch press release?"]
    assert brain.summarize(messages=[], previous_summary=previous).content == previous
    assert brain.summarize(messages=[]).content == ""


def test_it_fills_the_post_template() -> None:
    brain = RulesBrain({"post_template": "{agent} thinks {topic} is great. #{{daily}}"})

    reply = brain.compose_post(topic="  solar   power ", agent_name="Sunny")

    assert reply.content == "Sunny thinks solar power is great. #{daily}"
    assert RulesBrain().compose_post(topic="tea").content.startswith("Agent on tea: ")


def test_it_is_deterministic() -> None:
    view = TradeView(
        cash=1000.0,
        positions={"AAA": 3, "BBB": 5},
        prices={"AAA": 10.0, "BBB": 20.0, "CCC": 5.0},
        history={"AAA": [12.0, 11.0], "BBB": [18.0, 19.0], "CCC": [4.0, 4.5]},
        state={"n": 1},
        tick=7,
    )
    first, second = RulesBrain({"keywords": {"a": "b"}}), RulesBrain({"keywords": {"a": "b"}})

    for brain in (first, second):
        assert brain.respond(messages=CONVERSATION) == first.respond(messages=CONVERSATION)
        assert brain.summarize(messages=CONVERSATION) == first.summarize(messages=CONVERSATION)
        assert brain.compose_post(topic="x", agent_name="y") == first.compose_post(
            topic="x", agent_name="y"
        )
        assert brain.decide_trade(view=view) == first.decide_trade(view=view)


# -- rules: trading --------------------------------------------------------------------------

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


def test_momentum_buys_the_top_riser_and_sells_fallers() -> None:
    decision = RulesBrain({"strategy": "momentum", "trade_fraction": 0.1}).decide_trade(view=MARKET)

    assert decision.orders == [TradeOrder("FALL", "sell", 4), TradeOrder("RISE", "buy", 3)]
    assert decision.state == {"memo": "keep me", "last_tick": 3}
    assert decision.reasoning.startswith("momentum: ")


def test_mean_reversion_buys_the_top_faller_and_sells_risers() -> None:
    decision = RulesBrain({"strategy": "mean_reversion", "trade_fraction": 0.5}).decide_trade(
        view=MARKET
    )

    assert decision.orders == [TradeOrder("RISE", "sell", 2), TradeOrder("FALL", "buy", 62)]


def test_hold_never_trades() -> None:
    decision = RulesBrain({"strategy": "hold"}).decide_trade(view=MARKET)

    assert decision.orders == []
    assert decision.state["memo"] == "keep me"


def test_it_buys_nothing_it_cannot_afford() -> None:
    poor = TradeView(
        cash=25.0, positions={}, prices={"RISE": 30.0}, history={"RISE": [20.0]}, tick=1
    )

    assert RulesBrain({"trade_fraction": 1}).decide_trade(view=poor).orders == []


def random_view(rng: random.Random) -> TradeView:
    symbols = rng.sample(["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"], rng.randint(1, 5))
    prices = {s: round(rng.uniform(0.01, 500), rng.choice([0, 2, 6])) or 0.01 for s in symbols}
    history = {
        s: [round(rng.uniform(0.01, 500), 3) for _ in range(rng.randint(0, 6))] for s in symbols
    }
    positions = {s: rng.randint(0, 50) for s in symbols if rng.random() < 0.6}
    if rng.random() < 0.2:
        positions["ZZZ"] = 7  # held without a price today
    cash = rng.choice([0.0, 0.005, rng.uniform(0, 100), rng.uniform(0, 1e6), 1e-9])
    return TradeView(cash, positions, prices, history, {"seed": rng.random()}, rng.randint(0, 99))


def assert_fillable(view: TradeView, orders: list[TradeOrder]) -> None:
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


@pytest.mark.parametrize("strategy", ["momentum", "mean_reversion", "hold"])
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
def test_rules_trades_keep_the_invariants(strategy: str, fraction: float) -> None:
    brain = RulesBrain({"strategy": strategy, "trade_fraction": fraction})
    rng = random.Random(f"{strategy}-{fraction}")

    for _ in range(200):
        view = random_view(rng)
        decision = brain.decide_trade(view=view)
        assert_fillable(view, decision.orders)
        assert decision.state == {**view.state, "last_tick": view.tick}
        assert brain.decide_trade(view=view) == decision


def test_clamping_keeps_the_invariants_for_any_orders() -> None:
    rng = random.Random(42)
    junk: list[Any] = [None, "buy", 3, {"symbol": 1}, {"side": "hold"}]

    for _ in range(500):
        view = random_view(rng)
        symbols = [*view.prices, "NOPE", "ZZZ"]
        raw: list[Any] = [
            {
                "symbol": rng.choice(symbols),
                "side": rng.choice(["buy", "sell", "BUY", "short"]),
                "quantity": rng.choice([-1, 0, 1, 5, 1000, 10**9, 2.0, 2.5, "3", True]),
            }
            for _ in range(rng.randint(0, 8))
        ]
        raw += rng.sample(junk, rng.randint(0, 2))

        orders, notes = clamp_orders(raw, view)

        assert_fillable(view, orders)
        assert len(orders) + sum(note.startswith("dropped") for note in notes) == len(raw)


def test_clamping_cuts_and_explains() -> None:
    view = TradeView(cash=100.0, positions={"A": 3}, prices={"A": 10.0, "B": 30.0}, history={})

    orders, notes = clamp_orders(
        [
            TradeOrder("A", "sell", 5),
            {"symbol": "A", "side": "sell", "quantity": 1},
            {"symbol": "B", "side": "Buy", "quantity": 2.0},
            {"symbol": "B", "side": "buy", "quantity": 2},
            {"symbol": "C", "side": "buy", "quantity": 1},
        ],
        view,
    )

    assert orders == [
        TradeOrder("A", "sell", 3),
        TradeOrder("B", "buy", 2),
        TradeOrder("B", "buy", 1),
    ]
    assert notes == [
        "cut sell A from 5 to 3: not enough held",
        "dropped sell 1 A: not enough held",
        "cut buy B from 2 to 1: not enough cash",
        "dropped buy C: no price",
    ]


# -- openai, against the fake chat-completions server ---------------------------------------


@pytest.fixture
def llm(settings: Any, chat_server: ChatServer) -> ChatServer:
    settings.LLM_BASE_URL = chat_server.url
    settings.LLM_API_KEY = API_KEY
    settings.LLM_MODEL = "test-model"
    settings.LLM_TIMEOUT = 5.0
    return chat_server


def test_it_talks_to_an_openai_compatible_server(llm: ChatServer) -> None:
    llm.reply("Hello Ann!", prompt_tokens=42, completion_tokens=3, model="test-model-2025")
    brain = get_brain("openai", {"temperature": 0.2, "max_tokens": 64})

    reply = brain.respond(
        messages=[user("Hi, I am Ann"), assistant("Hello!"), user("Say hi to me")],
        summary="Ann asked about tea.",
        agent_name="Teabot",
    )

    assert reply == BrainReply("Hello Ann!", 42, 3, "test-model-2025")
    request = llm.last_request()
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "test-model"
    assert request.body["temperature"] == 0.2
    assert request.body["max_tokens"] == 64
    assert request.body["messages"] == [
        {
            "role": "system",
            "content": (
                "You are Teabot, a helpful assistant.\n\nConversation so far: Ann asked about tea."
            ),
        },
        {"role": "user", "content": "Hi, I am Ann"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Say hi to me"},
    ]
    assert llm.request_count == 1


def test_it_uses_the_model_of_the_config_and_no_summary_line(llm: ChatServer) -> None:
    brain = get_brain("openai", {"model": "llama3.1:8b", "system_prompt": "Be {agent}."})

    reply = brain.respond(messages=[user("ping")], agent_name="brief")

    assert reply.content == "echo: ping"
    assert reply.model == "llama3.1:8b"
    assert reply.prompt_tokens > 0
    assert reply.completion_tokens == 2
    assert llm.last_request().body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_it_sends_a_placeholder_key_when_none_is_set(llm: ChatServer, settings: Any) -> None:
    settings.LLM_API_KEY = ""

    get_brain("openai", {}).respond(messages=[user("ping")])

    assert llm.last_request().headers["authorization"] == "Bearer not-needed"


def test_it_summarises_and_posts_through_the_llm(llm: ChatServer) -> None:
    llm.reply("Ann likes tea.", prompt_tokens=30, completion_tokens=4)
    llm.reply("Tea is great! #tea", prompt_tokens=20, completion_tokens=5)
    brain = get_brain("openai", {})

    summary = brain.summarize(
        messages=[user("I like tea"), assistant("Noted")], previous_summary="Ann said hi."
    )
    post = brain.compose_post(topic="tea", agent_name="Teabot")

    assert (summary.content, summary.prompt_tokens, summary.completion_tokens) == (
        "Ann likes tea.",
        30,
        4,
    )
    assert (post.content, post.completion_tokens) == ("Tea is great! #tea", 5)
    summary_prompt = llm.requests[0].body["messages"][-1]["content"]
    assert "Ann said hi." in summary_prompt
    assert "user: I like tea\nassistant: Noted" in summary_prompt
    post_messages = llm.requests[1].body["messages"]
    assert post_messages[0]["content"] == "You are Teabot, a helpful assistant."
    assert "Topic: tea" in post_messages[1]["content"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry_after": "2"}, 2.0),
        ({"retry_after": "0.5"}, 0.5),
        ({"retry_after": None, "retry_after_ms": "1500"}, 1.5),
        ({"retry_after": "9", "retry_after_ms": "250"}, 0.25),
        ({"retry_after": None}, 1.0),
        ({"retry_after": "soon"}, 1.0),
    ],
)
def test_it_maps_rate_limits_to_their_delay(
    llm: ChatServer, headers: dict[str, Any], expected: float
) -> None:
    llm.rate_limit(**headers)

    with pytest.raises(RateLimitError) as caught:
        get_brain("openai", {}).respond(messages=[user("hi")])

    assert caught.value.retry_after == expected
    assert caught.value.service == "llm"
    assert str(caught.value).startswith(f"rate limited by llm: retry after {expected:g} s")
    assert llm.request_count == 1  # the client does not retry: Celery does


def test_it_reads_a_retry_after_date(llm: ChatServer) -> None:
    llm.rate_limit(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))

    with pytest.raises(RateLimitError) as caught:
        get_brain("openai", {}).respond(messages=[user("hi")])

    assert 25 <= caught.value.retry_after <= 31


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_maps_server_errors_to_a_retryable_service_error(llm: ChatServer, status: int) -> None:
    llm.error(status, "the GPU caught fire")

    with pytest.raises(ExternalServiceError) as caught:
        get_brain("openai", {}).respond(messages=[user("hi")])

    assert caught.value.service == "llm"
    assert str(caught.value) == f"external service llm failed: HTTP {status}: the GPU caught fire"
    assert llm.request_count == 1


@pytest.mark.timeout(15)
def test_it_gives_up_after_its_timeout(llm: ChatServer) -> None:
    llm.delay(2.0)
    brain = get_brain("openai", {"timeout": 0.3})
    started = time.monotonic()

    with pytest.raises(ExternalServiceError) as caught:
        brain.respond(messages=[user("hi")])

    assert time.monotonic() - started < 1.5
    assert str(caught.value) == "external service llm failed: timed out after 0.3 s"


def test_it_maps_an_unreachable_server_to_a_service_error(settings: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.LLM_BASE_URL = f"http://user:hunter2@127.0.0.1:{port}/v1"
    settings.LLM_TIMEOUT = 2.0

    with pytest.raises(ExternalServiceError) as caught:
        get_brain("openai", {}).respond(messages=[user("hi")])

    assert f"cannot reach http://127.0.0.1:{port}/v1" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        ("not json", "application/json", "body is not JSON"),
        ("not json", "text/plain", "body is not a chat completion"),
        ("[1, 2]", "application/json", "body is not a chat completion"),
        ('{"choices": []}', "application/json", "no choices"),
        ('{"id": "x"}', "application/json", "no choices"),
        ('{"choices": [{"index": 0}]}', "application/json", "no message content"),
        (
            '{"choices": [{"index": 0, "message": {"role": "assistant", "content": null}}]}',
            "application/json",
            "no message content",
        ),
    ],
)
def test_it_maps_malformed_bodies_to_a_service_error(
    llm: ChatServer, body: str, content_type: str, detail: str
) -> None:
    llm.raw(body, content_type=content_type)

    with pytest.raises(ExternalServiceError) as caught:
        get_brain("openai", {}).respond(messages=[user("hi")])

    assert str(caught.value).startswith("external service llm failed: malformed response: ")
    assert detail in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "llm_auth"),
        (403, "llm_auth"),
        (404, "llm_model_not_found"),
        (400, "llm_bad_request"),
        (422, "llm_bad_request"),
    ],
)
def test_it_maps_client_errors_to_permanent_errors(llm: ChatServer, status: int, code: str) -> None:
    llm.error(status, f"rejected key {API_KEY}")

    with pytest.raises(PermanentError) as caught:
        get_brain("openai", {}).respond(messages=[user("hi")])

    assert caught.value.error_code == code
    assert str(caught.value).startswith(f"permanent error {code}: ")
    assert f"HTTP {status}: rejected key ***" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value.args)
    assert caught.value.__cause__ is None  # the openai exception (and its request) stays behind
    assert caught.value.__suppress_context__


def test_it_names_the_missing_model(llm: ChatServer) -> None:
    llm.error(404, "model 'gpt-9' not found")

    with pytest.raises(PermanentError) as caught:
        get_brain("openai", {"model": "gpt-9"}).respond(messages=[user("hi")])

    assert "model 'gpt-9'" in str(caught.value)


def test_it_never_leaks_an_openai_exception(llm: ChatServer) -> None:
    for setup in (
        lambda: llm.error(409),
        lambda: llm.error(418),
        lambda: llm.rate_limit(),
        lambda: llm.raw("<html>", status=200, content_type="text/html"),
        lambda: llm.raw("oops", status=500, content_type="text/plain"),
    ):
        setup()
        with pytest.raises(AgentError):
            get_brain("openai", {}).respond(messages=[user("hi")])


# -- openai trading --------------------------------------------------------------------------


def test_it_parses_the_llm_trade_and_drops_invalid_orders(llm: ChatServer) -> None:
    content = {
        "orders": [
            {"symbol": "RISE", "side": "buy", "quantity": 10},
            {"symbol": "FALL", "side": "sell", "quantity": 9},  # only 4 held: cut to 4
            {"symbol": "NOPE", "side": "buy", "quantity": 1},  # not priced: dropped
            {"symbol": "UP", "side": "short", "quantity": 1},  # no such side: dropped
            {"symbol": "UP", "side": "buy", "quantity": -2},  # dropped
            {"symbol": "UP", "side": "buy", "quantity": 1000},  # cut to what cash buys
            "nonsense",
        ],
        "reasoning": "Ride the trend.",
    }
    llm.reply(
        f"Sure!\n```json\n{json.dumps(content)}\n```", prompt_tokens=150, completion_tokens=60
    )

    decision = get_brain("openai", {}).decide_trade(view=MARKET)

    assert decision.orders == [
        TradeOrder("RISE", "buy", 10),
        TradeOrder("FALL", "sell", 4),
        TradeOrder("UP", "buy", 58),
    ]
    assert_fillable(MARKET, decision.orders)
    assert decision.reasoning.startswith("Ride the trend. [")
    assert "dropped buy NOPE: no price" in decision.reasoning
    assert (decision.prompt_tokens, decision.completion_tokens) == (150, 60)
    assert decision.state == {"memo": "keep me", "last_tick": 3}
    prompt = llm.last_request().body["messages"][-1]["content"]
    assert '"RISE": 30.0' in prompt
    assert '"memo": "keep me"' in prompt
    assert "Cash: 1000.00" in prompt


def test_it_holds_when_the_llm_orders_nothing(llm: ChatServer) -> None:
    llm.reply('{"orders": [], "reasoning": "wait"}')

    decision = get_brain("openai", {}).decide_trade(view=MARKET)

    assert decision == TradeDecision(
        [], {"memo": "keep me", "last_tick": 3}, "wait", decision.prompt_tokens, 4
    )


@pytest.mark.parametrize("content", ["I would buy RISE.", "{not json}", '["buy"]'])
def test_it_refuses_a_trade_reply_without_a_json_object(llm: ChatServer, content: str) -> None:
    llm.reply(content)

    with pytest.raises(ExternalServiceError) as caught:
        get_brain("openai", {}).decide_trade(view=MARKET)

    assert "malformed response: trade decision is not a JSON object" in str(caught.value)


# -- the fake server itself ------------------------------------------------------------------


def test_the_fake_server_runs_as_a_separate_process() -> None:
    script = json.dumps([{"kind": "reply", "content": "from the script"}])
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.agents.chat_server", "--port", "0", "--script", script],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=20), "the fake server printed no URL"
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")

        answer = _post(f"{url}/chat/completions", {"model": "m", "messages": []})
        recorded = json.loads(_get(url.removesuffix("/v1") + "/_fake/requests"))

        assert answer["choices"][0]["message"]["content"] == "from the script"
        assert [r["path"] for r in recorded] == ["/v1/chat/completions"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0


def test_the_fake_server_stops_while_a_request_waits(chat_server: ChatServer) -> None:
    chat_server.delay(30)
    waiting = subprocess.Popen(  # a client that would wait 30 s
        [sys.executable, "-c", _CLIENT.format(url=chat_server.url)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until(lambda: chat_server.request_count == 1, timeout=10)
        started = time.monotonic()
        chat_server.stop(timeout=5)
        assert time.monotonic() - started < 3
    finally:
        waiting.kill()
        waiting.wait(timeout=10)


_CLIENT = (
    "import urllib.request\n"
    "req = urllib.request.Request('{url}/chat/completions', data=b'{{}}', method='POST')\n"
    "try:\n    urllib.request.urlopen(req, timeout=60)\nexcept Exception:\n    pass\n"
)


def _wait_until(predicate: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310  (a local test URL)
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        return str(response.read().decode())
