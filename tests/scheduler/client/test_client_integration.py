"""The Python API against a real worker: a run waited on comes back finished, and a run whose
parameters name an agent carries the agent's header through the broker, so that every event of
it (queued, started, succeeded) belongs to the agent."""

from __future__ import annotations

import pytest

from scheduler import client
from scheduler.models import TaskEvent
from tests.factories import make_agent
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_run_of_an_agents_task_waited_on_belongs_to_the_agent(celery_worker):
    agent = make_agent("Poster", kind="poster")

    done = client.run("agents.post", {"agent": agent.slug, "topic": "news"}, wait=30)

    assert done.state == "SUCCESS", done
    assert done.worker == celery_worker.hostname
    events = TaskEvent.objects.filter(task_id=done.task_id)
    wait_for(
        lambda: events.filter(type="task.succeeded").exists(),
        timeout=10,
        what="the succeeded event",
    )
    assert {"task.queued", "task.started", "task.succeeded"} <= set(
        events.values_list("type", flat=True)
    )
    assert set(events.values_list("object_type", "object_id")) == {("agent", str(agent.pk))}
