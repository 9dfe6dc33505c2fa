"""The rules brain (agents/brains/rules.py), deterministic: greetings, keyword replies (whole words,
plurals), summaries of the most informative sentences, posts from its template, and trades by
strategy that keep the invariants, as clamping keeps them for any orders.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from agents.brains import ChatMessage, RulesBrain, TradeOrder, TradeView, clamp_orders
from tests.agents.helpers import MARKET, assert_fillable, assistant, user

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
