"""The rules brain: deterministic and offline, good enough to demonstrate every agent feature.

- respond: the greeting when no user has spoken yet; else the reply of the keyword that occurs
  first in the last user message (whole words, any case, the keyword's last word also in its
  plural: "schedule" answers "schedules", "policy" "policies"); else a reply quoting that
  message (`echo`), or a fixed acknowledgement.
- summarize: extractive. Sentences of the previous summary and of the messages (not system
  messages) are scored by how frequent their words are in the whole text; the best
  `summary_sentences` are kept in their original order, ties going to the earlier sentence. The
  best sentence of the previous summary is always among them (when two or more are kept).
- compose_post: `post_template` filled with {agent} and {topic}.
- decide_trade: momentum, mean reversion or hold, on the change from the oldest price in the
  history to the current price.

Token counts are word counts (`count_words`): there is no tokenizer, and the numbers only have
to be comparable between runs of this brain.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Literal

from pydantic import Field, field_validator

from agents.brains.base import (
    Brain,
    BrainConfig,
    BrainReply,
    ChatMessage,
    TradeDecision,
    TradeOrder,
    TradeView,
    affordable_quantity,
    clamp_orders,
    count_words,
    usable_price,
)

MODEL_NAME = "rules"
ACKNOWLEDGEMENT = "I hear you. Tell me more."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[\w']+")
# Words too common to say what a sentence is about.
_STOPWORD_TEXT = """
    a about after all also am an and any are as at be because been before being but by can
    could did do does doing for from had has have having he her here hers him his how i if in
    into is it its just me more most my no not now of off on once only or other our out over
    own same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your yours
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class RulesConfig(BrainConfig):
    greeting: str = Field("Hello! How can I help?", min_length=1)
    keywords: dict[str, str] = Field(
        default_factory=dict,
        description="word or phrase -> reply (whole words, any case, singular or plural)",
    )
    echo: bool = Field(True, description="without a keyword, reply quoting the user's message")
    post_template: str = Field(
        "{agent} on {topic}: here is what I think matters most about {topic} today.",
        description="uses {topic} and, optionally, {agent}",
    )
    summary_sentences: int = Field(3, ge=1, le=20)
    strategy: Literal["momentum", "mean_reversion", "hold"] = "momentum"
    trade_fraction: float = Field(0.1, gt=0, le=1)

    @field_validator("keywords")
    @classmethod
    def _keywords_are_words(cls, keywords: dict[str, str]) -> dict[str, str]:
        blank = [word for word in keywords if not _WORD.search(word)]
        if blank:
            raise ValueError(f"keywords must contain a word, not {blank[0]!r}")
        return keywords

    @field_validator("post_template")
    @classmethod
    def _template_names_topic(cls, template: str) -> str:
        if "{topic}" not in template:
            raise ValueError("must contain {topic}")
        try:
            template.format(agent="agent", topic="topic")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"only {{agent}} and {{topic}} can be filled in (write {{{{ and }}}} for "
                f"braces): {exc}"
            ) from None
        return template


class RulesBrain(Brain):
    kind = "rules"
    config_model = RulesConfig
    config: RulesConfig

    def respond(
        self, *, messages: list[ChatMessage], summary: str = "", agent_name: str = ""
    ) -> BrainReply:
        said = next((m.content for m in reversed(messages) if m.role == "user"), None)
        if said is None or not said.strip():
            content = self.config.greeting
        else:
            content = self._keyword_reply(said) or (
                f'You said: "{" ".join(said.split())}"' if self.config.echo else ACKNOWLEDGEMENT
            )
        prompt = sum(count_words(m.content) for m in messages) + count_words(summary)
        return BrainReply(content, prompt, count_words(content), MODEL_NAME)

    def _keyword_reply(self, text: str) -> str | None:
        best: tuple[int, int, str] | None = None  # (position, -length, keyword): first, longest
        for keyword in self.config.keywords:
            words = keyword.split()
            found = re.search(_keyword_pattern(words), text, flags=re.IGNORECASE)
            if found is None:
                continue
            candidate = (found.start(), -len(" ".join(words)), keyword)
            if best is None or candidate < best:
                best = candidate
        return None if best is None else self.config.keywords[best[2]]

    def summarize(self, *, messages: list[ChatMessage], previous_summary: str = "") -> BrainReply:
        texts = [previous_summary] + [m.content for m in messages if m.role != "system"]
        sentences: list[str] = []
        carried = 0  # sentences[:carried] come from the previous summary
        for number, text in enumerate(texts):
            for sentence in _SENTENCE_END.split(text):
                sentence = " ".join(sentence.split())
                if _WORD.search(sentence) and sentence not in sentences:
                    sentences.append(sentence)
            if number == 0:
                carried = len(sentences)
        prompt = sum(count_words(text) for text in texts)
        if not sentences:
            return BrainReply(previous_summary, prompt, count_words(previous_summary), MODEL_NAME)
        frequency = Counter(word for s in sentences for word in _content_words(s))

        def score(index: int) -> tuple[float, int]:
            words = _content_words(sentences[index])
            total = sum(frequency[word] for word in words)
            # Dividing by the square root favours neither one-word nor run-on sentences.
            return (-(total / math.sqrt(len(words))) if words else 0.0, index)

        ranked = sorted(range(len(sentences)), key=score)
        keep = self.config.summary_sentences
        best = ranked[:keep]
        if carried and keep >= 2 and min(best) >= carried:
            # The previous summary stands for everything before these messages: its best
            # sentence stays, so that older context fades rather than vanishes at once.
            best = [*best[: keep - 1], next(i for i in ranked if i < carried)]
        content = " ".join(sentences[index] for index in sorted(best))
        return BrainReply(content, prompt, count_words(content), MODEL_NAME)

    def compose_post(self, *, topic: str, agent_name: str = "") -> BrainReply:
        topic = " ".join(topic.split())
        content = self.config.post_template.format(agent=agent_name or "Agent", topic=topic)
        return BrainReply(content, count_words(topic), count_words(content), MODEL_NAME)

    def decide_trade(self, *, view: TradeView) -> TradeDecision:
        strategy = self.config.strategy
        state: dict[str, Any] = {**view.state, "last_tick": view.tick}
        if strategy == "hold":
            return TradeDecision([], state, "hold: no orders")
        changes = {
            symbol: change
            for symbol in sorted(view.prices)
            if (change := _change(view, symbol)) is not None
        }
        # Momentum follows the trend; mean reversion bets against it.
        direction = 1.0 if strategy == "momentum" else -1.0
        wanted: list[TradeOrder] = []
        reasons: list[str] = []
        for symbol, change in changes.items():
            held = view.positions.get(symbol, 0)
            if held > 0 and direction * change < 0:
                wanted.append(TradeOrder(symbol, "sell", held))
                reasons.append(f"sell {held} {symbol} ({change:+.1%})")
        selling = {order.symbol for order in wanted}
        candidates = [
            (direction * change, symbol)
            for symbol, change in changes.items()
            if direction * change > 0 and symbol not in selling
        ]
        if candidates:
            # Highest signal first; on a tie, the first symbol in alphabetical order.
            _, symbol = min(candidates, key=lambda item: (-item[0], item[1]))
            price = usable_price(view, symbol)
            assert price is not None  # `_change` only keeps priced symbols
            quantity = affordable_quantity(view.cash * self.config.trade_fraction, price)
            if quantity > 0:
                wanted.append(TradeOrder(symbol, "buy", quantity))
                reasons.append(f"buy {quantity} {symbol} ({changes[symbol]:+.1%})")
        orders, _ = clamp_orders(wanted, view)
        reasoning = f"{strategy}: " + ("; ".join(reasons) if reasons else "no signal")
        return TradeDecision(orders, state, reasoning)


def _keyword_pattern(words: list[str]) -> str:
    """Whole words, any whitespace between them, the last one also in its plural."""
    # People answer "ask me about schedules" with the word they were offered, which is rarely
    # the singular a keyword is written in.
    *first, last = words
    if len(last) > 1 and last[-1] in "yY" and last[-2].lower() not in "aeiou":
        forms = [last[:-1] + "ies", last]
    else:
        forms = [last + "es", last + "s", last]
    plural = "(?:" + "|".join(re.escape(form) for form in forms) + ")"
    return r"(?<!\w)" + r"\s+".join([*(re.escape(word) for word in first), plural]) + r"(?!\w)"


def _content_words(sentence: str) -> list[str]:
    return [w for w in _WORD.findall(sentence.lower()) if w not in _STOPWORDS]


def _change(view: TradeView, symbol: str) -> float | None:
    """Relative change from the oldest price in the history to the current price."""
    price = usable_price(view, symbol)
    history = view.history.get(symbol) or []
    if price is None or not history:
        return None
    first = history[0]
    if isinstance(first, bool) or not isinstance(first, int | float):
        return None
    if not math.isfinite(first) or first <= 0:
        return None
    return (price - first) / first
