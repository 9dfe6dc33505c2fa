"""The OpenAI brain (agents/brains/openai.py) against the fake chat-completions server
(tests/agents/chat_server.py): what it sends and reads back, each failure mapped to a retryable,
rate-limit or permanent error without leaking the key or an openai exception, and trades parsed
from the reply.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from agents.brains import BrainReply, TradeDecision, TradeOrder, get_brain
from agents.errors import AgentError, ExternalServiceError, PermanentError, RateLimitError
from tests.agents.chat_server import ChatServer
from tests.agents.helpers import MARKET, assert_fillable, assistant, user

API_KEY = "sk-test-0123456789abcdef"


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
