"""Secrets are never shown or logged.

Task arguments under a configured key (SECRET_ARGUMENT_KEYS: api_key, password, token, ...) are
masked wherever people see them: the dashboard and a task's page, the events of the websocket,
the API, the admin's results and audit trail, and the CLI's history and show; and in what Celery
logs, sends in its events and stores as a result's arguments (the message's argsrepr and
kwargsrepr), while the task itself gets the real values. Secrets of the deployment (SECRET_KEY,
LLM_API_KEY, an agent's webhook secret) appear in no log record of the code paths that hold them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Retry
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_celery_results.models import TaskResult
from pydantic import Field

from agents import services as agent_services
from agents import tasks as agent_tasks
from agents.admin import masked as masked_secret
from agents.brains import get_brain
from agents.brains.base import ChatMessage
from agents.errors import RETRY_POLICY, AgentError, ExternalServiceError
from agents.models import Agent
from agents.signatures import sign
from config.celery import app
from config.env import DEFAULT_SECRET_KEYS
from scheduler.admin.periodic_tasks import PeriodicTaskAdmin
from scheduler.catalog import CatalogEntry, Params, catalog
from scheduler.core.masking import (
    MASK,
    is_secret_key,
    mask,
    mask_text,
    masked,
)
from scheduler.live.consumers import EventsConsumer
from scheduler.live.events import event_record
from scheduler.services import stored_kwargs, task_enqueue, task_run_with_retries
from tests.agents.chat_server import ChatServer, running_chat_server
from tests.clients import api_client, client_for, response_json
from tests.factories import TaskResultFactory, UserFactory, make_schedule
from tests.processes import BASE_DIR
from tests.queues import take_queued

pytestmark = pytest.mark.security

SECRET = "sk-live-123"
NESTED_SECRET = "hunter2-nested"
SECRETS = (SECRET, NESTED_SECRET)
PARAMS = {
    "api_key": SECRET,
    "note": "visible-note",
    "nested": {"Password": NESTED_SECRET, "prompt_tokens": 42},
}
SECRET_TASK = "tests.secret_echo"
KEYS = DEFAULT_SECRET_KEYS


# --- The masking itself (scheduler/core/masking.py) -----------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("OPENAI_API_KEY", True),
        ("X-Api-Key", True),
        ("apikey", True),
        ("password", True),
        ("db_password", True),
        ("Authorization", True),
        ("webhook_secret", True),
        ("refresh_token", True),
        ("note", False),
        ("idempotency_key", False),
        ("author", False),
        ("topic", False),
        (7, False),
    ],
)
def test_it_names_a_key_secret_when_it_contains_a_configured_word(key, secret):
    assert is_secret_key(key, KEYS) is secret


def test_it_masks_strings_under_secret_keys_at_any_depth_and_leaves_the_rest():
    value = {
        "api_key": SECRET,
        "note": "visible",
        "nested": [{"Password": NESTED_SECRET, "prompt_tokens": 42, "token": None}],
        "credentials": {"user": "ann", "pin": "1234"},
        "secret": "",
    }

    shown = mask(value, KEYS)

    assert shown == {
        "api_key": MASK,
        "note": "visible",
        "nested": [{"Password": MASK, "prompt_tokens": 42, "token": None}],
        "credentials": {"user": MASK, "pin": MASK},
        "secret": "",
    }
    assert value["api_key"] == SECRET  # the input is left as it was


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("{'api_key': 'sk-live-123', 'n': 1}", "{'api_key': '********', 'n': 1}"),
        ('{"api_key": "sk-live-123"}', '{"api_key": "********"}'),
        ('"{\\"api_key\\": \\"sk-live-123\\"}"', '"{\\"api_key\\": \\"********\\"}"'),
        ("{'note': 'x', 'api_key': 'sk-live-1", "{'note': 'x', 'api_key': '********'"),
        ('{"password": "a\\"b", "n": 1}', '{"password": "********", "n": 1}'),
        ("https://x.example/?token=abc&page=2", "https://x.example/?token=********&page=2"),
        ("Authorization: Bearer abc", "Authorization: ********"),
        ("{'note': 'nothing secret'}", "{'note': 'nothing secret'}"),
    ],
)
def test_it_masks_arguments_that_are_only_text(text, shown):
    assert mask_text(text, KEYS) == shown


def test_it_masks_nothing_without_keys():
    assert mask({"api_key": SECRET}, []) == {"api_key": SECRET}
    assert mask_text("api_key=x", []) == "api_key=x"


def test_it_reads_the_secret_keys_from_the_environment(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "ENV_FILE": str(tmp_path / "absent.env"),
        "VAR_DIR": str(tmp_path),
        "SECRET_KEY": "s",
        "SECRET_ARGUMENT_KEYS": " PIN , Session_Cookie,,",
    }
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.SECRET_ARGUMENT_KEYS)"

    process = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=BASE_DIR, capture_output=True, text=True
    )

    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "['pin', 'session_cookie']"


# --- A task queued with a secret in its arguments ------------------------------------------------


class SecretParams(Params):
    api_key: str = Field(description="a credential the task needs")
    note: str = ""
    nested: dict[str, Any] = Field(default_factory=dict)


def _secret_echo(api_key: str, note: str = "", nested: dict[str, Any] | None = None) -> dict:
    return {"note": note, "key_length": len(api_key)}


@pytest.fixture
def secret_task(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[None]:
    """A catalog task taking a credential, run in the caller (CELERY_ENABLED=false)."""
    settings.CELERY_ENABLED = False
    entry = CatalogEntry(name=SECRET_TASK, description="Echo (tests).", params=SecretParams)
    monkeypatch.setitem(catalog._entries, SECRET_TASK, entry)
    app.task(name=SECRET_TASK, shared=False)(_secret_echo)
    try:
        yield
    finally:
        app.tasks.pop(SECRET_TASK, None)


def _run_secret_task(api: Any) -> str:
    response = api.post("/api/tasks/", {"task": SECRET_TASK, "params": PARAMS}, format="json")
    assert response.status_code == 202, response.content
    return str(response_json(response)["task_id"])


def _shows_no_secret(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        text = text.decode()
    return not any(secret in text for secret in SECRETS)


def scheduler(*args: str) -> str:
    stdout = StringIO()
    call_command("scheduler", *args, stdout=stdout, stderr=StringIO())
    return stdout.getvalue()


@pytest.fixture
def superuser() -> Any:
    return UserFactory.create(is_superuser=True)


@pytest.mark.django_db
def test_a_queued_secret_is_shown_masked_everywhere_and_kept_for_a_retry(
    secret_task, superuser, django_capture_on_commit_callbacks
):
    api = api_client(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        task_id = _run_secret_task(api)
    result = TaskResult.objects.get(task_id=task_id)
    assert result.status == "SUCCESS"
    browser = client_for(superuser)

    dashboard = browser.get("/dashboard/")
    page = browser.get(f"/dashboard/tasks/{task_id}/")
    detail = api.get(f"/api/tasks/{task_id}/")
    history = api.get("/api/tasks/")
    admin_page = browser.get(
        reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
    )
    cli = [
        scheduler("history", "--format", "json"),
        scheduler("history", "--format", "detailed"),
        scheduler("history"),
    ]

    for response in (dashboard, page, detail, history, admin_page):
        assert response.status_code == 200
        assert _shows_no_secret(response.content), response.wsgi_request.path
    for output in cli:
        assert _shows_no_secret(output), output
    assert task_id in page.content.decode()
    for response in (page, admin_page):
        assert MASK in response.content.decode()
        assert "visible-note" in response.content.decode()
    [shown] = json.loads(cli[0])
    assert shown["kwargs"]["api_key"] == MASK
    assert shown["kwargs"]["nested"] == {"Password": MASK, "prompt_tokens": 42}
    # Run in the caller (no message, no repr): stored as given, so a retry has the real value.
    assert stored_kwargs(result)["api_key"] == SECRET


# As the results backend stores a run's arguments: the message's kwargsrepr, as a JSON string.
STORED_KWARGS = {
    "queued by us (JSON)": json.dumps(json.dumps(PARAMS)),
    "queued by beat (a Python repr)": json.dumps(repr(PARAMS)),
    "cut by Celery at 1024 characters": json.dumps(repr({"pad": "x" * 990, **PARAMS})[:1024]),
}


@pytest.mark.django_db
@pytest.mark.parametrize("stored", list(STORED_KWARGS))
def test_stored_arguments_are_masked_however_they_were_stored(superuser, stored):
    raw = STORED_KWARGS[stored]
    if stored.startswith("cut"):
        cut_at = json.loads(raw)
        assert SECRET not in cut_at or cut_at.endswith("'")  # the secret starts, maybe whole
    result = TaskResultFactory.create(
        task_name=SECRET_TASK, task_kwargs=raw, task_args=json.dumps(repr(({"token": SECRET},)))
    )
    browser = client_for(superuser)

    page = browser.get(f"/dashboard/tasks/{result.task_id}/")
    admin_page = browser.get(
        reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
    )
    outputs = [scheduler("history", "--format", fmt) for fmt in ("json", "detailed")]

    assert page.status_code == admin_page.status_code == 200
    assert _shows_no_secret(page.content)
    assert _shows_no_secret(admin_page.content)
    for output in outputs:
        assert _shows_no_secret(output), output


@pytest.mark.django_db
def test_a_schedules_secret_params_are_masked_in_the_cli_and_the_audit_trail(secret_task):
    schedule = make_schedule(name="nightly", task=SECRET_TASK, params=PARAMS)

    outputs = [
        scheduler("show", "nightly"),
        scheduler("show", "nightly", "--json"),
        scheduler("list", "--json"),
    ]
    trail = PeriodicTaskAdmin.audit_trail(None, schedule)  # type: ignore[arg-type]

    for output in (*outputs, str(trail)):
        assert _shows_no_secret(output), output
    assert json.loads(outputs[1])["params"]["api_key"] == MASK
    assert "visible-note" in outputs[0]


def _run_as_superuser() -> str:
    return _run_secret_task(api_client(UserFactory.create(is_superuser=True)))


def _watcher() -> Any:
    user = UserFactory.create(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    return user


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_websocket_never_carries_a_secret(secret_task):
    event_record_async = database_sync_to_async(event_record)
    await event_record_async(
        type="task.queued", task_id="old", task_name=SECRET_TASK, payload={"params": PARAMS}
    )
    communicator = WebsocketCommunicator(EventsConsumer.as_asgi(), "/ws/events/")
    communicator.scope["user"] = await database_sync_to_async(_watcher)()
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    backfill = await communicator.receive_from(timeout=5)

    task_id = await database_sync_to_async(_run_as_superuser)()
    frames: list[str] = []
    while '"task.succeeded"' not in "".join(frames):
        frames.append(await communicator.receive_from(timeout=5))
    await communicator.disconnect()

    assert _shows_no_secret(backfill)
    assert json.loads(backfill)["events"][0]["data"]["params"]["api_key"] == MASK
    assert all(_shows_no_secret(frame) for frame in frames)
    assert any(task_id in frame for frame in frames)


# --- What Celery shows: the message's reprs ------------------------------------------------------


@pytest.mark.django_db
def test_a_message_carries_masked_reprs_and_the_real_arguments(
    secret_task, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_ENABLED = True  # through the broker (this run's Redis), no worker takes it

    with django_capture_on_commit_callbacks(execute=True):
        task_id = task_enqueue(task=SECRET_TASK, params=PARAMS)
    message = take_queued(catalog.get(SECRET_TASK).queue, task_id)

    assert message is not None
    headers = message["headers"]
    assert json.loads(headers["kwargsrepr"]) == {
        "api_key": MASK,
        "note": "visible-note",
        "nested": {"Password": MASK, "prompt_tokens": 42},
    }
    _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert kwargs == PARAMS  # the task runs with the real values


def test_reprs_that_celery_makes_itself_are_masked_too():
    # Beat and tasks that queue others leave the repr to Celery: a Python repr, cut at 1024.
    message = app.amqp.as_task_v2(
        "id-1", SECRET_TASK, args=({"token": SECRET},), kwargs={"pad": "x" * 2000, **PARAMS}
    )

    assert _shows_no_secret(message.headers["argsrepr"])
    assert _shows_no_secret(message.headers["kwargsrepr"])
    assert "visible-note" not in message.headers["kwargsrepr"]  # cut: the secret came later
    assert message.sent_event is None or _shows_no_secret(json.dumps(message.sent_event))
    assert message.body[1]["api_key"] == SECRET


@pytest.mark.django_db
def test_a_result_stored_with_masked_secrets_is_not_retried_with_the_mask(api_admin):
    result = TaskResultFactory.create(
        task_name=SECRET_TASK, status="FAILURE", task_kwargs=json.dumps(json.dumps(PARAMS))
    )
    TaskResult.objects.filter(pk=result.pk).update(
        task_kwargs=json.dumps(json.dumps(mask(PARAMS, KEYS)))
    )

    response = api_admin.post(f"/api/tasks/{result.task_id}/retry/")

    assert response.status_code == 400
    assert "hold masked secrets" in response_json(response)["params"][0]


def test_celerys_log_records_name_task_arguments_masked(caplog):
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    context = {"id": "1", "name": SECRET_TASK, "args": "()", "kwargs": repr(PARAMS)}

    logging.getLogger("celery.app.trace").info(
        "Task %(name)s[%(id)s] succeeded: %(kwargs)s", context, extra={"data": context}
    )

    [record] = caplog.records
    assert _shows_no_secret(record.getMessage())
    assert _shows_no_secret(repr(record.data))
    assert "visible-note" in record.getMessage()


# --- Secrets of the deployment in logs -----------------------------------------------------------

LLM_KEY = "sk-llm-key-never-logged"
WEBHOOK_SECRET = "agent-webhook-secret-never-logged"


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = []
    for record in caplog.records:
        lines.append(formatter.format(record))  # message, args and traceback
        lines.append(repr(getattr(record, "data", "")))  # Celery's structured extras
    return "\n".join(lines)


@pytest.fixture
def llm(settings: Any) -> Iterator[ChatServer]:
    with running_chat_server() as server:
        settings.LLM_BASE_URL = server.url
        settings.LLM_API_KEY = LLM_KEY
        settings.LLM_TIMEOUT = 5.0
        yield server


@pytest.mark.django_db
def test_the_llm_key_is_not_logged_when_the_llm_fails(llm, caplog):
    caplog.set_level(logging.DEBUG)
    agent = agent_services.agent_create(name="Bot", slug="bot", brain="openai")
    session = agent_services.session_open(agent=agent)
    for status in (401, 500):
        llm.error(status, f"rejected key {LLM_KEY}")
        agent_tasks.process_message.apply(
            kwargs={"session_id": session.pk, "text": "hi"}, throw=False
        )
    llm.error(500, f"rejected key {LLM_KEY}")
    with pytest.raises(AgentError) as failed:
        get_brain("openai", {}).respond(messages=[ChatMessage("user", "hi")])
    # The retry path of a worker (not eager) logs the error it retries.
    worker_task = SimpleNamespace(
        name="agents.process_message",
        request=SimpleNamespace(retries=0, is_eager=False),
        retry=lambda **kwargs: Retry(),
    )
    with pytest.raises(Retry):
        task_run_with_retries(
            worker_task, lambda: (_ for _ in ()).throw(failed.value), policy=RETRY_POLICY
        )

    logged = _logged(caplog)
    assert llm.request_count == 3
    assert "retry 1 of" in logged  # the paths did log
    assert LLM_KEY not in logged
    assert LLM_KEY[-8:] not in logged


@pytest.mark.django_db
def test_an_agents_webhook_secret_is_not_logged_on_delivery_or_refusal(caplog, settings):
    caplog.set_level(logging.DEBUG)
    agent = agent_services.agent_create(
        name="Hook", slug="hook", webhook_url="http://127.0.0.1:9/unreachable"
    )
    Agent.objects.filter(pk=agent.pk).update(webhook_secret=WEBHOOK_SECRET)
    session = agent_services.session_open(agent=agent, channel="webhook", external_id="c")
    reply = agent_services.message_answer(
        message=agent_services.message_receive(session=session, content="hi").message
    )

    delivery = agent_tasks.send_response.apply(kwargs={"message_id": reply.pk}, throw=False)
    body = b'{"type": "message", "conversation": "c", "message_id": "1", "text": "x"}'
    refused = Client().post(
        "/api/inbound/hook/",
        body,
        content_type="application/json",
        HTTP_X_AGENT_SIGNATURE=sign("a guess", body),
    )

    logged = _logged(caplog)
    assert isinstance(delivery.result, ExternalServiceError)
    assert refused.status_code == 403
    assert "Forbidden" in logged  # the refusal was logged
    assert WEBHOOK_SECRET not in logged
    assert sign(WEBHOOK_SECRET, body) not in logged
    assert settings.SECRET_KEY not in logged


@pytest.mark.django_db
def test_the_secret_key_and_task_secrets_are_not_logged_while_tasks_run_and_pages_render(
    secret_task, superuser, caplog, settings, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    api = api_client(superuser)

    with django_capture_on_commit_callbacks(execute=True):
        task_id = _run_secret_task(api)
    client_for(superuser).get(f"/dashboard/tasks/{task_id}/")
    api.post("/api/tasks/", {"task": SECRET_TASK, "params": {"api_key": 1}}, format="json")

    logged = _logged(caplog)
    assert caplog.records  # something was logged
    assert settings.SECRET_KEY not in logged
    assert _shows_no_secret(logged), logged


@pytest.mark.django_db
def test_the_agent_admin_shows_the_webhook_secret_masked_on_every_page(superuser):
    agent = agent_services.agent_create(name="Hook", slug="hook")
    Agent.objects.filter(pk=agent.pk).update(webhook_secret=WEBHOOK_SECRET)
    browser = client_for(superuser)

    pages = [
        browser.get(reverse("admin:agents_agent_changelist")),
        browser.get(reverse("admin:agents_agent_change", args=[agent.pk])),
        browser.get(reverse("admin:agents_agent_history", args=[agent.pk])),
        browser.get(reverse("admin:agents_agent_delete", args=[agent.pk])),
        browser.get("/agents/"),
    ]

    for page in pages:
        assert page.status_code == 200
        assert WEBHOOK_SECRET not in page.content.decode()
    assert masked_secret(WEBHOOK_SECRET) in pages[1].content.decode()


def test_masking_follows_the_configured_keys_when_they_change(settings):
    value = {"pin": "1234", "nested": [{"PIN-code": "5678"}], "count": 3}
    assert masked(value) == value  # not a secret by default

    settings.SECRET_ARGUMENT_KEYS = ["pin"]
    assert masked(value) == {"pin": MASK, "nested": [{"PIN-code": MASK}], "count": 3}
    assert value["pin"] == "1234"  # the input is not changed
