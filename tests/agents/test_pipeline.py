"""The message pipeline on a real worker and Redis: dispatcher -> `llm` queue -> worker ->
brain -> database -> channel layer -> a websocket client; duplicates, retries and failures.

The worker's `openai` brain talks to a fake chat-completions server in this process (a real
HTTP round trip; tests/agents/chat_server.py), and retries quickly (AGENT_RETRY_BASE).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django_celery_results.models import TaskResult

from agents import services
from agents.dispatch import dispatch_message
from agents.models import Message, Session
from scheduler.live.consumers import EventsConsumer
from scheduler.models import TaskEvent
from tests.agents.chat_server import ChatServer, running_chat_server
from tests.factories import UserFactory
from tests.processes import RunningProcess, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUES = ["llm", "webhooks", "summarization", "followups", "agents", "default"]
WAIT = 30


@pytest.fixture(scope="module")
def llm() -> Iterator[ChatServer]:
    with running_chat_server() as server:
        yield server


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None, django_db_blocker: object, run_dir: Path, llm: ChatServer
) -> Iterator[RunningProcess]:
    running = start_worker(
        log_dir=run_dir,
        queues=QUEUES,
        env={"LLM_BASE_URL": llm.url, "LLM_API_KEY": "test-key", "AGENT_RETRY_BASE": "0.05"},
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _celery_on(settings: Any, llm: ChatServer) -> Iterator[None]:
    settings.CELERY_ENABLED = True
    yield
    assert llm.pending == 0, "a test left scripted answers unused"


def _session(**agent_fields: Any) -> Session:
    fields: dict[str, Any] = {"name": "Pipeline", "slug": f"pipeline-{time.time_ns()}"}
    fields.update(agent_fields)
    return services.session_open(agent=services.agent_create(**fields))


def _finished(task_id: str, worker: RunningProcess) -> TaskResult:
    def done() -> bool:
        return TaskResult.objects.filter(
            task_id=task_id, status__in=["SUCCESS", "FAILURE"]
        ).exists()

    wait_for(done, timeout=WAIT, what=f"task {task_id} to finish\n{worker.log()}")
    return TaskResult.objects.get(task_id=task_id)


def _events(task_id: str, type: str) -> int:
    # Event rows are written in batches by the worker: give the last batch its moment.
    time.sleep(0.5)
    return TaskEvent.objects.filter(task_id=task_id, type=type).count()


@pytest.mark.asyncio
async def test_a_reply_made_by_a_worker_arrives_on_the_sessions_websocket(worker):
    session = await sync_to_async(_session)(brain_config={"keywords": {"hello": "Hi there!"}})
    user = await sync_to_async(UserFactory.create)(is_staff=True)
    permission = await sync_to_async(Permission.objects.get)(codename="view_dashboard")
    await sync_to_async(user.user_permissions.add)(permission)
    communicator = WebsocketCommunicator(
        EventsConsumer.as_asgi(), f"/ws/events/?object=session:{session.pk}&backfill=0"
    )
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    try:
        assert (await communicator.receive_json_from(timeout=5))["kind"] == "backfill"

        dispatched = await sync_to_async(dispatch_message)(session=session, text="hello")

        roles: list[str] = []
        reply: dict[str, Any] = {}
        deadline = time.monotonic() + WAIT
        while "assistant" not in roles:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no reply on the websocket; got {roles}"
            message = await communicator.receive_json_from(timeout=remaining)
            event = message.get("event") or {}
            if event.get("type") == "session.message":
                roles.append(event["data"]["message"]["role"])
                reply = event["data"]["message"]
    finally:
        await communicator.disconnect()

    assert dispatched["queued"] is True
    assert roles == ["user", "assistant"]
    assert reply["content"] == "Hi there!"
    assert reply["task_id"] == dispatched["task_id"]


def test_the_same_message_delivered_twice_gets_one_reply(worker):
    session = _session()

    first = dispatch_message(session=session, text="ping", source="telegram", message_id="77")
    second = dispatch_message(session=session, text="ping", source="telegram", message_id="77")

    results = [_finished(d["task_id"], worker) for d in (first, second)]
    assert [r.status for r in results] == ["SUCCESS", "SUCCESS"]
    assert sorted(json.loads(r.result)["duplicate"] for r in results) == [False, True]
    assert session.messages.filter(role="user").count() == 1
    assert session.messages.filter(role="assistant").count() == 1


def test_an_llm_reply_records_its_token_counts(worker, llm):
    llm.reply("Hello from the model.", prompt_tokens=12, completion_tokens=5, model="tiny")
    session = _session(brain="openai", brain_config={"model": "tiny"})

    result = _finished(dispatch_message(session=session, text="hi")["task_id"], worker)

    assert result.status == "SUCCESS", result.traceback
    reply = Message.objects.get(session=session, role="assistant")
    assert (reply.content, reply.prompt_tokens, reply.completion_tokens) == (
        "Hello from the model.",
        12,
        5,
    )
    assert llm.last_request().headers["authorization"] == "Bearer test-key"


def test_a_rate_limit_is_retried_after_the_delay_it_names(worker, llm):
    llm.rate_limit(retry_after="0.5").reply("Sorry for the wait.")
    session = _session(brain="openai")

    started = time.monotonic()
    task_id = dispatch_message(session=session, text="hi")["task_id"]
    result = _finished(task_id, worker)

    assert result.status == "SUCCESS", result.traceback
    assert time.monotonic() - started >= 0.5
    assert _events(task_id, "task.retried") == 1
    assert session.messages.get(role="assistant").content == "Sorry for the wait."


def test_a_failing_llm_is_retried_three_times_then_fails_with_its_reason(worker, llm):
    for _ in range(4):
        llm.error(500, "the model crashed")
    session = _session(brain="openai")
    before = llm.request_count

    task_id = dispatch_message(session=session, text="hi")["task_id"]
    result = _finished(task_id, worker)

    assert result.status == "FAILURE"
    assert "ExternalServiceError" in result.result
    assert "llm" in json.loads(result.result)["exc_message"][0]
    assert llm.request_count - before == 4  # the first try and three retries
    assert _events(task_id, "task.retried") == 3
    failed = TaskEvent.objects.get(task_id=task_id, type="task.failed")
    assert "ExternalServiceError" in failed.message
    assert not session.messages.filter(role="assistant").exists()


def test_a_permanent_error_fails_at_once_with_its_code(worker, llm):
    llm.error(401, "bad key")
    session = _session(brain="openai")
    before = llm.request_count

    task_id = dispatch_message(session=session, text="hi")["task_id"]
    result = _finished(task_id, worker)

    assert result.status == "FAILURE"
    assert "llm_auth" in result.result
    assert llm.request_count - before == 1
    assert _events(task_id, "task.retried") == 0
