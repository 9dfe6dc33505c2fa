from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from agents.demo import DEMO_AGENT_SLUG, DEMO_POST_SCHEDULE, DEMO_POSTER_SLUG
from agents.models import Agent, AgentSchedule, Session
from scheduler.devstack.demo import (
    CLEANUP_NAME,
    DEMO_CHANNEL_NAME,
    DEMO_FLAKY_NAME,
    DEMO_PING_NAME,
    DEMO_RULE_NAME,
)
from scheduler.models import AlertChannel, AlertRule, AuditEntry
from tournaments.demo import (
    DEMO_HOURS,
    DEMO_INTERVAL,
    DEMO_TOURNAMENT_NAME,
    DEMO_TRADERS,
)
from tournaments.models import Entry, Tournament

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
    # The demo assistant and poster, the six demo traders, and mine.
    assert Agent.objects.count() == 2 + len(DEMO_TRADERS) + 1
    assert capsys.readouterr().out.strip().endswith("nothing to do.")


def test_it_leaves_the_results_cleanup_to_the_migration_that_made_it(cleanup_schedule):
    call_command("seed_demo")

    task = PeriodicTask.objects.select_related("crontab").get(task="scheduler.cleanup_results")
    assert task.pk == cleanup_schedule.pk
    assert task.name == CLEANUP_NAME
    assert task.crontab is not None
    assert (task.crontab.minute, task.crontab.hour) == ("30", "3")


def test_it_does_not_bring_back_a_results_cleanup_staff_deleted():
    # Tests start without the migration's cleanup (tests/conftest.py), as after staff deleted it.
    call_command("seed_demo")

    assert not PeriodicTask.objects.filter(task="scheduler.cleanup_results").exists()


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
    # The sessions' upkeep is declared (agents/upkeep.py): `scheduler sync` makes it, not the demo.
    assert not PeriodicTask.objects.filter(task__startswith="agents.check").exists()


def test_it_says_once_that_nothing_goes_live_before_redis_runs(capsys, monkeypatch):
    from scheduler.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "_redis_answers", lambda: False)

    call_command("seed_demo")

    output = capsys.readouterr().out
    assert output.startswith("Redis is not running yet")
    assert "Created agent" in output


def test_it_starts_a_live_demo_tournament_of_six_traders_with_its_periodic_upkeep(capsys):
    before = timezone.now()
    call_command("seed_demo")

    cup = Tournament.objects.select_related("periodic_task__interval").get()
    assert cup.name == DEMO_TOURNAMENT_NAME
    assert cup.status == Tournament.Status.LIVE
    assert before <= cup.starts_at <= timezone.now()
    assert cup.ends_at - cup.starts_at == timedelta(hours=DEMO_HOURS)
    assert cup.decision_interval == DEMO_INTERVAL
    # Its own periodic task, which beat runs: a round of decisions every interval.
    task = cup.periodic_task
    assert task is not None
    assert task.task == "tournaments.run_live_tournament_agents"
    assert json.loads(task.kwargs) == {"tournament_id": cup.pk}
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (DEMO_INTERVAL, IntervalSchedule.SECONDS)
    assert task.enabled
    entries = list(cup.entries.select_related("agent"))
    assert {entry.agent.slug for entry in entries} == set(DEMO_TRADERS)
    assert {entry.agent.kind for entry in entries} == {Agent.Kind.TRADER}
    assert {entry.agent.brain for entry in entries} == {Agent.Brain.RULES}
    assert {entry.strategy for entry in entries} == {
        "buy_and_hold",
        "momentum",
        "mean_reversion",
        "random",
        "brain",
    }
    assert {entry.status for entry in entries} == {Entry.Status.ACTIVE}
    # The upkeep is declared (tournaments/upkeep.py): `scheduler sync` makes it, as `stack up`
    # runs it before the demo.
    assert not PeriodicTask.objects.filter(task="tournaments.check_transitions").exists()
    call_command("scheduler", "sync")
    upkeep = PeriodicTask.objects.select_related("interval").filter(task__startswith="tournaments.")
    upkeep = upkeep.exclude(task="tournaments.run_live_tournament_agents")
    assert sorted((row.task, row.interval.every, row.interval.period) for row in upkeep) == [
        ("tournaments.check_transitions", 1, IntervalSchedule.MINUTES),
        ("tournaments.recover_crashed_agents", 2, IntervalSchedule.MINUTES),
        ("tournaments.update_rankings", 30, IntervalSchedule.SECONDS),
    ]
    assert f"Created tournament '{DEMO_TOURNAMENT_NAME}' with 6 traders" in capsys.readouterr().out


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Agent, Tournament, Entry, PeriodicTask, AuditEntry)
    }


def test_a_second_seed_leaves_the_demo_tournament_as_it_is(capsys):
    call_command("seed_demo")
    cup = Tournament.objects.get()
    Entry.objects.filter(tournament=cup).update(decision_count=3)  # it has been running
    before = _counts()

    call_command("seed_demo")

    assert _counts() == before
    assert set(Entry.objects.values_list("decision_count", flat=True)) == {3}
    assert capsys.readouterr().out.strip().endswith("nothing to do.")


def test_once_the_demo_tournament_ran_its_hours_the_next_seed_starts_another():
    call_command("seed_demo")
    first = Tournament.objects.get()

    with time_machine.travel(first.ends_at + timedelta(minutes=5), tick=False):
        call_command("seed_demo")
        call_command("seed_demo")

    second = Tournament.objects.exclude(pk=first.pk).get()
    assert second.name == f"{DEMO_TOURNAMENT_NAME} 2"
    assert second.status == Tournament.Status.LIVE
    assert second.starts_at == first.ends_at + timedelta(minutes=5)
    assert second.entries.count() == len(DEMO_TRADERS)
    # The demo traders are the same agents in both.
    assert set(second.entries.values_list("agent_id", flat=True)) == set(
        first.entries.values_list("agent_id", flat=True)
    )


def test_it_adds_a_flaky_schedule_with_an_alert_that_emails_the_on_call():
    call_command("seed_demo")

    flaky = PeriodicTask.objects.get(name=DEMO_FLAKY_NAME)
    assert (flaky.task, json.loads(flaky.kwargs)["pattern"]) == ("scheduler.flaky", "FS")
    rule = AlertRule.objects.get(name=DEMO_RULE_NAME)
    assert (rule.trigger, rule.target_type, rule.target) == ("failed", "schedule", DEMO_FLAKY_NAME)
    channel = rule.channels.get()
    assert (channel.name, channel.kind) == (DEMO_CHANNEL_NAME, "email")
    assert channel.config == {"to": ["oncall@example.com"]}
    rule.channels.clear()

    call_command("seed_demo")  # what staff changed stays

    assert AlertRule.objects.get(name=DEMO_RULE_NAME).channels.count() == 0
    assert AlertChannel.objects.count() == 1
