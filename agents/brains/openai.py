"""The OpenAI brain: the official `openai` client against any OpenAI-compatible server.

`LLM_BASE_URL`, `LLM_API_KEY`, `LLM_MODEL` and `LLM_TIMEOUT` come from the settings (a local
Ollama or vLLM works as well as OpenAI itself). The client never retries: a failed call raises
one of `agents.errors`, and the Celery task decides whether and when to try again. No openai
exception escapes, and the API key never appears in a message.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from pydantic import Field, field_validator

from agents.brains.base import (
    Brain,
    BrainConfig,
    BrainReply,
    ChatMessage,
    TradeDecision,
    TradeView,
    clamp_orders,
)
from agents.errors import AgentError, ExternalServiceError, PermanentError, RateLimitError

if TYPE_CHECKING:
    # For annotations only: the package itself is imported on first use (`_openai`).
    import openai
    from openai.types.chat import ChatCompletionMessageParam

SERVICE = "llm"
DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"
DEFAULT_MODEL = "llama3.2"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRY_AFTER = 1.0
HISTORY_IN_PROMPT = 10  # prices per symbol shown to the model: enough for a trend, few tokens
_DETAIL_LENGTH = 200

SUMMARY_INSTRUCTION = (
    "Summarise the conversation below in a few sentences for someone who will continue it. "
    "Keep names, facts, decisions and open questions. Reply with the summary only."
)
POST_INSTRUCTION = (
    "Write a short social media post about the topic below, in your own voice. "
    "Reply with the post only.\n\nTopic: {topic}"
)
TRADE_INSTRUCTION = """You trade in a simulated market. Decide this tick's orders.

Tick: {tick}
Cash: {cash:.2f}
Positions (symbol: quantity): {positions}
Current prices: {prices}
Recent prices, oldest first: {history}
Your notes from earlier ticks: {state}

Rules: buy only what your cash pays for; sell only what you hold; quantities are positive
whole numbers; symbols are those priced above. Reply with one JSON object and nothing else:
{{"orders": [{{"symbol": "ABC", "side": "buy", "quantity": 1}}], "reasoning": "one sentence"}}
Use an empty list of orders to hold."""


class OpenAIConfig(BrainConfig):
    model: str | None = Field(None, min_length=1, description="default: the LLM_MODEL setting")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(512, ge=1, le=32768)
    system_prompt: str = Field(
        "You are {agent}, a helpful assistant.", description="may use {agent}"
    )
    timeout: float | None = Field(
        None, gt=0, le=600, description="seconds; default: the LLM_TIMEOUT setting"
    )

    @field_validator("system_prompt")
    @classmethod
    def _prompt_fills(cls, prompt: str) -> str:
        try:
            prompt.format(agent="agent")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"only {{agent}} can be filled in (write {{{{ and }}}} for braces): {exc}"
            ) from None
        return prompt


class OpenAIBrain(Brain):
    kind = "openai"
    config_model = OpenAIConfig
    config: OpenAIConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        # Settings are read when the brain is built: a stored config without a model or a
        # timeout follows the deployment's settings.
        self.base_url: str = getattr(settings, "LLM_BASE_URL", DEFAULT_BASE_URL) or DEFAULT_BASE_URL
        self._api_key: str = getattr(settings, "LLM_API_KEY", "") or ""
        self.model: str = self.config.model or getattr(settings, "LLM_MODEL", "") or DEFAULT_MODEL
        self.timeout: float = float(
            self.config.timeout or getattr(settings, "LLM_TIMEOUT", None) or DEFAULT_TIMEOUT
        )

    def __repr__(self) -> str:
        return f"<OpenAIBrain model={self.model!r} base_url={_safe_url(self.base_url)!r}>"

    def respond(
        self, *, messages: list[ChatMessage], summary: str = "", agent_name: str = ""
    ) -> BrainReply:
        system = self.config.system_prompt.format(agent=agent_name or "an assistant")
        if summary.strip():
            system += f"\n\nConversation so far: {summary.strip()}"
        return self._complete([ChatMessage("system", system), *messages])

    def summarize(self, *, messages: list[ChatMessage], previous_summary: str = "") -> BrainReply:
        lines = [f"{m.role}: {m.content}" for m in messages if m.role != "system"]
        prompt = SUMMARY_INSTRUCTION
        if previous_summary.strip():
            prompt += f"\n\nSummary of what came before: {previous_summary.strip()}"
        prompt += "\n\nConversation:\n" + "\n".join(lines)
        return self._complete([ChatMessage("user", prompt)])

    def compose_post(self, *, topic: str, agent_name: str = "") -> BrainReply:
        system = self.config.system_prompt.format(agent=agent_name or "an assistant")
        prompt = POST_INSTRUCTION.format(topic=" ".join(topic.split()))
        return self._complete([ChatMessage("system", system), ChatMessage("user", prompt)])

    def decide_trade(self, *, view: TradeView) -> TradeDecision:
        prompt = TRADE_INSTRUCTION.format(
            tick=view.tick,
            cash=view.cash,
            positions=json.dumps(view.positions, sort_keys=True),
            prices=json.dumps(view.prices, sort_keys=True),
            history=json.dumps(
                {s: p[-HISTORY_IN_PROMPT:] for s, p in sorted(view.history.items())}
            ),
            state=json.dumps(view.state, sort_keys=True, default=str),
        )
        reply = self._complete([ChatMessage("user", prompt)])
        decision = _parse_json_object(reply.content)
        raw_orders = decision.get("orders")
        if raw_orders is None:
            raw_orders = []
        if not isinstance(raw_orders, list):
            raw_orders = [raw_orders]
        orders, notes = clamp_orders(raw_orders, view)
        reasoning = decision.get("reasoning")
        reasoning = " ".join(str(reasoning).split()) if reasoning is not None else ""
        if notes:
            reasoning = f"{reasoning} [{'; '.join(notes)}]".strip()
        return TradeDecision(
            orders=orders,
            state={**view.state, "last_tick": view.tick},
            reasoning=reasoning,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
        )

    def _complete(self, messages: list[ChatMessage]) -> BrainReply:
        openai = _openai()
        try:
            # One client per call: nothing shared across forked workers, no pool left open.
            with openai.OpenAI(
                base_url=self.base_url,
                api_key=self._api_key or "not-needed",
                timeout=self.timeout,
                max_retries=0,  # retries are Celery's, with our backoff
            ) as client:
                completion = client.chat.completions.create(
                    model=self.model,
                    messages=[_message_param(m) for m in messages],
                    temperature=self.config.temperature,
                    max_tokens=self.config.max_tokens,
                )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from None
        except json.JSONDecodeError as exc:  # a body that says it is JSON and is not
            raise self._malformed(f"body is not JSON ({exc})") from None
        return self._reply(completion)

    def _reply(self, completion: object) -> BrainReply:
        if not isinstance(completion, _openai().types.chat.ChatCompletion):
            raise self._malformed(f"body is not a chat completion: {str(completion)[:80]!r}")
        choices = getattr(completion, "choices", None)
        if not choices:
            raise self._malformed("no choices")
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            raise self._malformed("no message content")
        usage = getattr(completion, "usage", None)
        return BrainReply(
            content=content.strip(),
            prompt_tokens=_count(getattr(usage, "prompt_tokens", 0)),
            completion_tokens=_count(getattr(usage, "completion_tokens", 0)),
            model=str(getattr(completion, "model", None) or self.model),
        )

    def _map_error(self, exc: openai.OpenAIError) -> AgentError:
        openai = _openai()
        if isinstance(exc, openai.APITimeoutError):
            return ExternalServiceError(SERVICE, f"timed out after {self.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return ExternalServiceError(
                SERVICE, self._scrub(f"cannot reach {_safe_url(self.base_url)}: {exc}")
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return self._malformed(str(exc))
        if isinstance(exc, openai.RateLimitError):
            return RateLimitError(
                _retry_after(exc.response.headers),
                self._scrub(f"HTTP 429: {_detail(exc)}"),
                SERVICE,
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._scrub(f"HTTP {status}: {_detail(exc)}")
            if status >= 500 or status in (408, 409):  # the server's trouble, or a race
                return ExternalServiceError(SERVICE, detail)
            if status in (401, 403):
                return PermanentError("llm_auth", detail)
            if status == 404:
                return PermanentError("llm_model_not_found", f"model {self.model!r}: {detail}")
            return PermanentError("llm_bad_request", detail)
        return ExternalServiceError(SERVICE, self._scrub(f"{type(exc).__name__}: {exc}"))

    def _malformed(self, detail: str) -> ExternalServiceError:
        return ExternalServiceError(SERVICE, self._scrub(f"malformed response: {detail}"))

    def _scrub(self, text: str) -> str:
        text = " ".join(text.split())
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text


def _openai() -> ModuleType:
    """The `openai` package, imported on first use."""
    # Not with the app: importing it takes about a second, which every process (web, worker,
    # beat, each command) would pay at start although most never talk to a model.
    import openai

    return openai


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    elif isinstance(body, str) and body.strip():
        text = body
    else:
        text = exc.message
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_LENGTH else text[: _DETAIL_LENGTH - 1] + "…"


def _retry_after(headers: Any) -> float:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    seconds = _number(value)
    if seconds is not None:
        return seconds
    if value:
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return DEFAULT_RETRY_AFTER


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    if number is None or not math.isfinite(number) or number < 0:
        return None
    return number


def _safe_url(url: str) -> str:
    """The URL without credentials, which some deployments put in it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url


def _parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's reply, allowing code fences or a sentence around it."""
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            value = json.loads(text[start : end + 1])
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    snippet = " ".join(text.split())[:80]
    raise ExternalServiceError(
        SERVICE, f"malformed response: trade decision is not a JSON object: {snippet!r}"
    )
