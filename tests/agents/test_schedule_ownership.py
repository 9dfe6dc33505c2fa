"""A schedule whose task takes an `agent` parameter belongs to that agent, whichever way it was
made or changed (admin, CLI, API, Python, schedules as code): linked (`AgentSchedule`), shown on
the agent's page, covered by its pause, and its runs carry the agent's object header, runs
queued by hand (`task_enqueue`) too."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from agents import services
from agents.models import Agent, AgentSchedule
from config.celery import app
from scheduler import client
from scheduler.models import AuditEntry, TaskEvent
from scheduler.protocol import OBJECT_HEADER
from scheduler.schedules import DeclaredSchedule
from scheduler.services import (
    ScheduleError,
    schedule_run_now,
    schedule_update,
    schedules_pause,
    schedules_sync,
    task_enqueue,
)
from tests.factories import make_agent
from tests.forms import periodic_task_form
from tests.scheduler.admin.helpers import ADD_URL, form_errors
from tests.scheduler.cli.helpers import scheduler

pytestmark = pytest.mark.django_db

POST = "agents.post"


def _params(agent: Agent, topic: str = "news") -> dict[str, Any]:
    return {"agent": agent.slug, "topic": topic}


def _owner_of(name: str) -> str | None:
    headers = json.loads(PeriodicTask.objects.get(name=name).headers or "{}")
    return headers.get(OBJECT_HEADER)


def assert_owned(name: str, agent: Agent) -> None:
    link = AgentSchedule.objects.get(periodic_task__name=name)
    assert link.agent_id == agent.pk
    assert _owner_of(name) == f"agent:{agent.pk}"
    assert name in services.agents_schedule_names(agents=[agent])


@pytest.fixture
def agent() -> Agent:
    return make_agent("Poster", kind="poster")


def test_it_links_a_schedule_made_in_the_admin(admin, agent):
    response = admin.post(
        ADD_URL,
        periodic_task_form(name="posts", task=POST, kwargs=json.dumps(_params(agent))),
    )

    assert response.status_code == 302, form_errors(response)
    assert_owned("posts", agent)


def test_it_links_a_schedule_made_on_the_command_line(agent):
    scheduler(
        "create",
        "posts",
        "every day at 9am",
        "--task",
        POST,
        "--params",
        json.dumps(_params(agent)),
    )

    assert_owned("posts", agent)


def test_it_links_a_schedule_made_through_the_api(api_admin, agent):
    response = api_admin.post(
        "/api/schedules/",
        {"name": "posts", "task": POST, "schedule": "every day at 9am", "params": _params(agent)},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert_owned("posts", agent)


def test_it_links_a_schedule_made_in_python(agent):
    made = client.schedule(POST, "every day at 9am", params=_params(agent), name="posts")

    assert made.owner == ("agent", str(agent.pk))
    assert_owned("posts", agent)


def test_it_links_a_schedule_declared_in_code(agent):
    schedules_sync(
        [
            DeclaredSchedule(
                name="posts", task=POST, schedule="every day at 9am", params=_params(agent)
            )
        ],
        prune=False,
    )

    assert_owned("posts", agent)


def test_a_schedule_whose_agent_changes_moves_to_the_new_agent(agent):
    other = make_agent("Other", kind="poster")
    client.schedule(POST, "every day at 9am", params=_params(agent), name="posts")

    schedule_update(name="posts", params=_params(other))

    assert_owned("posts", other)
    assert AgentSchedule.objects.filter(periodic_task__name="posts").count() == 1
    assert "posts" not in services.agents_schedule_names(agents=[agent])


def test_an_owned_schedule_shows_on_the_agents_page_and_is_paused_with_it(admin, agent):
    client.schedule(POST, "every day at 9am", params=_params(agent), name="posts")

    page = admin.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()
    schedules_pause(names=services.agents_schedule_names(agents=[agent]))

    assert "posts" in page
    assert PeriodicTask.objects.get(name="posts").enabled is False


def test_a_schedule_made_for_an_agent_must_name_that_agent_in_its_params(agent):
    other = make_agent("Other", kind="poster")

    with pytest.raises(ScheduleError, match="belongs to agent 'poster'"):
        services.agent_schedule_create(
            agent=agent, name="posts", task=POST, schedule="every day", params=_params(other)
        )

    assert not PeriodicTask.objects.filter(name="posts").exists()
    assert not AuditEntry.objects.exists()


def test_agent_schedule_create_links_a_task_without_an_agent_parameter(agent):
    made = services.agent_schedule_create(
        agent=agent, name="backups", task="agents.backup_memory", schedule="every 6 hours"
    )

    assert made.agent == agent
    assert _owner_of("backups") == f"agent:{agent.pk}"


# --- Runs queued by hand carry the object header --------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    messages: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, **options: messages.append((name, options)))
    return messages


def test_a_run_queued_by_hand_carries_the_header_of_the_agent_its_params_name(
    agent, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        task_enqueue(task=POST, params=_params(agent))

    [(name, options)] = sent
    assert name == POST
    assert options["headers"] == {OBJECT_HEADER: f"agent:{agent.pk}"}


def test_run_now_carries_the_header_of_the_schedules_owner(
    agent, sent, django_capture_on_commit_callbacks
):
    services.agent_schedule_create(
        agent=agent, name="backups", task="agents.backup_memory", schedule="every 6 hours"
    )

    with django_capture_on_commit_callbacks(execute=True):
        schedule_run_now(name="backups")

    [(_, options)] = sent
    assert options["headers"] == {
        "periodic_task_name": "backups",
        OBJECT_HEADER: f"agent:{agent.pk}",
    }


def test_the_events_of_a_run_queued_by_hand_reach_the_agents_group(
    agent, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_ENABLED = False  # run here, in the caller, as a deployment without a broker

    with django_capture_on_commit_callbacks(execute=True):
        task_id = task_enqueue(task=POST, params=_params(agent))

    events = TaskEvent.objects.filter(task_id=task_id)
    assert {event.type for event in events} >= {"task.started", "task.succeeded"}
    assert {(event.object_type, event.object_id) for event in events} == {("agent", str(agent.pk))}
