from __future__ import annotations

import pytest

from config.celery import app
from config.queues import QUEUES, VISIBILITY_TIMEOUT, queue_for


def test_it_accepts_and_produces_json_only():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert conf.event_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]
    assert getattr(app.backend, "accept", None) == {"application/json"}


def test_it_uses_the_reliability_defaults():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_max_tasks_per_child > 0
    assert conf.result_extended is True
    assert conf.task_track_started is True
    assert conf.worker_send_task_events is True
    assert conf.task_always_eager is False
    assert conf.timezone == "UTC"
    assert conf.enable_utc is True


def test_it_keeps_tasks_invisible_longer_than_the_longest_task():
    longest = max(spec.hard_limit for spec in QUEUES.values())
    assert app.conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT
    assert longest < VISIBILITY_TIMEOUT


def test_it_declares_every_named_queue():
    declared = {queue.name for queue in app.conf.task_queues}
    assert declared == {
        "default",
        "agents",
        "trading",
        "recovery",
        "llm",
        "summarization",
        "followups",
        "webhooks",
        "crm",
        "maintenance",
    }


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("scheduler.ping", "default"),
        ("scheduler.health_check", "default"),
        ("scheduler.backup_database", "maintenance"),
        ("scheduler.cleanup_results", "maintenance"),
        ("scheduler.send_notification", "webhooks"),
        ("agents.process_message", "llm"),
        ("agents.summarize_session", "summarization"),
        ("agents.send_followup", "followups"),
        ("agents.send_response", "webhooks"),
        ("agents.create_crm_order", "crm"),
        ("agents.post", "agents"),
        ("tournaments.run_agent_decision", "agents"),
        ("tournaments.recover_agent_state", "recovery"),
        ("tournaments.update_rankings", "trading"),
        ("somewhere.else", "default"),
    ],
)
def test_it_routes_tasks_to_their_queue(task_name, queue):
    assert queue_for(task_name) == queue
    assert app.amqp.router.route({}, task_name)["queue"].name == queue


@pytest.mark.parametrize(
    ("queue", "hard"),
    [
        ("default", 10),
        ("llm", 60),
        ("summarization", 120),
        ("followups", 60),
        ("webhooks", 30),
        ("crm", 30),
    ],
)
def test_it_gives_each_queue_its_time_limit_with_a_soft_limit_a_few_seconds_under(queue, hard):
    spec = QUEUES[queue]
    assert spec.hard_limit == hard
    assert 0 < spec.hard_limit - spec.soft_limit <= 10


def test_it_applies_the_queue_limits_to_registered_tasks():
    from scheduler.system.tasks import ping

    assert (ping.time_limit, ping.soft_time_limit) == (10, 8)


def test_it_keeps_limits_a_task_declares_itself():
    @app.task(name="tests.declares_own_limit", time_limit=99, shared=False)
    def declares_own_limit() -> None:
        return None

    assert declares_own_limit.time_limit == 99
