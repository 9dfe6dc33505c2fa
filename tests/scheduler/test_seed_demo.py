from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from agents.demo import DEMO_AGENT_SLUG, DEMO_POST_SCHEDULE, DEMO_POSTER_SLUG
from agents.models import Agent, AgentSchedule, Session
from scheduler.demo import CLEANUP_NAME, DEMO_PING_NAME

pytestmark = pytest.mark.django_db


def test_it_creates_a_demo_agent_and_a_ping_every_minute(capsys):
    call_command("seed_demo")

    task = PeriodicTask.objects.get(name=DEMO_PING_NAME)
    assert task.task == "scheduler.ping"
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (1, IntervalSchedule.MINUTES)
    assert task.enabled
    assert Agent.objects.filter(slug=DEMO_AGENT_SLUG).exists()
    assert "Created" in capsys.readouterr().out


def test_it_is_idempotent_and_keeps_what_users_changed(capsys):
    call_command("seed_demo")
    task = PeriodicTask.objects.get(name=DEMO_PING_NAME)
    task.enabled = False
    task.save()
    mine = Agent.objects.create(name="Mine", slug="mine")

    call_command("seed_demo")

    assert PeriodicTask.objects.filter(name=DEMO_PING_NAME).count() == 1
    assert PeriodicTask.objects.get(name=DEMO_PING_NAME).enabled is False
    assert Agent.objects.filter(pk=mine.pk).exists()
    assert Agent.objects.count() == 3  # the two demo agents and mine
    assert capsys.readouterr().out.strip().endswith("nothing to do.")


def test_it_schedules_the_results_cleanup_daily_at_midnight():
    call_command("seed_demo")

    task = PeriodicTask.objects.select_related("crontab").get(name=CLEANUP_NAME)
    assert task.task == "scheduler.cleanup_results"
    assert task.queue == "maintenance"
    assert task.crontab is not None
    assert (task.crontab.minute, task.crontab.hour) == ("0", "0")
    assert json.loads(task.kwargs) == {"days": 30, "batch_size": 1000}


def test_it_adds_a_chat_agent_with_a_session_and_a_poster_with_a_daily_post():
    call_command("seed_demo")

    assistant = Agent.objects.get(slug=DEMO_AGENT_SLUG)
    session = Session.objects.get(agent=assistant)
    assert session.messages.get().role == "assistant"
    schedule = AgentSchedule.objects.select_related("periodic_task__crontab").get(
        periodic_task__name=DEMO_POST_SCHEDULE
    )
    assert schedule.agent.slug == DEMO_POSTER_SLUG
    task = schedule.periodic_task
    assert task.task == "agents.post"
    assert json.loads(task.kwargs) == {"agent": DEMO_POSTER_SLUG, "topic": "technology news"}
    assert task.crontab is not None
    assert (task.crontab.minute, task.crontab.hour) == ("0", "9")
    assert json.loads(task.headers)["scheduler_object"] == f"agent:{schedule.agent.pk}"
    upkeep = dict(
        PeriodicTask.objects.filter(task__startswith="agents.check").values_list("task", "enabled")
    )
    assert upkeep == {
        "agents.check_sessions_for_summarization": True,
        "agents.check_sessions_for_followups": True,
    }


def test_it_says_once_that_nothing_goes_live_before_redis_runs(capsys, monkeypatch):
    from scheduler.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "_redis_answers", lambda: False)

    call_command("seed_demo")

    output = capsys.readouterr().out
    assert output.startswith("Redis is not running yet")
    assert "Created agent" in output
