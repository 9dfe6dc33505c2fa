"""The agents' REST API for runs (`POST /api/agents/{slug}/run/`): a post or a reply queued, or run
in the caller without Celery, with the answers to bad input, unknown and paused agents.

With CELERY_ENABLED the views queue after commit: in these (non-transaction) tests on_commit
callbacks never run unless captured, so nothing reaches the broker.
"""

from __future__ import annotations

import pytest

from agents.models import Post
from scheduler.models import TaskEvent
from tests.agents.helpers import api_agent
from tests.clients import response_json

pytestmark = pytest.mark.django_db


# --- Runs ----------------------------------------------------------------------------------------


def test_it_queues_a_post_run_with_the_agent_from_the_url(
    api_admin, celery_on, django_capture_on_commit_callbacks
):
    agent = api_agent()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin.post(
            f"/api/agents/{agent.slug}/run/",
            {"action": "post", "params": {"topic": "weather"}},
            format="json",
        )

    body = response_json(response)
    assert response.status_code == 202, body
    assert body["status"] == "queued"
    assert body["url"].endswith(f"/api/tasks/{body['task_id']}/")
    assert len(callbacks) == 1


def test_it_runs_the_post_in_the_caller_without_celery(
    api_admin, celery_off, django_capture_on_commit_callbacks
):
    agent = api_agent()

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(
            f"/api/agents/{agent.slug}/run/",
            {"action": "post", "params": {"topic": "weather"}},
            format="json",
        )

    assert response.status_code == 202
    post = Post.objects.get()
    assert post.agent == agent
    assert post.topic == "weather"
    assert post.task_id == response_json(response)["task_id"]


def test_it_queues_a_reply_run_with_its_defaults(
    api_admin, celery_on, django_capture_on_commit_callbacks
):
    agent = api_agent()

    with django_capture_on_commit_callbacks(execute=False):
        response = api_admin.post(
            f"/api/agents/{agent.slug}/run/", {"action": "reply"}, format="json"
        )

    assert response.status_code == 202, response.content


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"action": "post", "params": {}}, "params", "topic: Field required"),
        ({"action": "post", "params": {"topic": ""}}, "params", "topic"),
        ({"action": "reply", "params": {"time_value": "soon"}}, "params", "time_value"),
        ({"action": "reply", "params": {"time_unit": "weeks"}}, "params", "time_unit"),
        ({"action": "post", "params": {"topic": "t", "mood": 1}}, "params", "mood"),
        ({"action": "post", "params": ["topic"]}, "params", "JSON object, not list"),
        ({"action": "post", "params": {"topic": "t", "agent": "other"}}, "params", "in the URL"),
        ({"action": "dance"}, "action", "not a valid choice"),
        ({}, "action", "required"),
        ({"action": "post", "queue": "llm"}, "queue", "not a field"),
    ],
)
def test_it_names_the_field_of_a_bad_run(api_admin, celery_on, body, field, words):
    agent = api_agent()

    response = api_admin.post(f"/api/agents/{agent.slug}/run/", body, format="json")

    errors = response_json(response)
    assert response.status_code == 400, errors
    assert words in " ".join(errors[field])
    assert not TaskEvent.objects.filter(type="task.queued").exists()


def test_it_accepts_the_agent_in_params_when_it_is_the_urls(
    api_admin, celery_on, django_capture_on_commit_callbacks
):
    agent = api_agent()

    with django_capture_on_commit_callbacks(execute=False):
        response = api_admin.post(
            f"/api/agents/{agent.slug}/run/",
            {"action": "post", "params": {"topic": "t", "agent": agent.slug}},
            format="json",
        )

    assert response.status_code == 202


def test_it_answers_404_to_a_run_of_an_unknown_agent(api_admin):
    response = api_admin.post("/api/agents/nobody/run/", {"action": "post"}, format="json")

    assert response.status_code == 404
    assert "nobody" in response_json(response)["detail"]


def test_it_refuses_to_run_a_paused_agent(api_admin):
    agent = api_agent(is_active=False)

    response = api_admin.post(
        f"/api/agents/{agent.slug}/run/",
        {"action": "post", "params": {"topic": "t"}},
        format="json",
    )

    assert response.status_code == 400
    assert "paused" in response_json(response)["agent"][0]
