"""The schedules of an agent or a tournament as a group: `manage.py scheduler pause|resume|run
--agent SLUG | --tournament ID` (as their admin pages' "Pause all schedules"), and `clear`:
disable or delete every periodic task a filter matches, listed first without --confirm. An
unknown object or a bad filter exits 1 and changes nothing.
"""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from agents import services as agent_services
from agents.models import Agent
from scheduler.models import AuditEntry, Source
from tests.factories import make_agent, make_tournament
from tests.scheduler.cli.helpers import create, scheduler, scheduler_json
from tournaments import services as tournament_services

pytestmark = pytest.mark.django_db


def agent_with_schedules(name: str = "Poster", *schedules: str) -> Agent:
    agent = make_agent(name)
    for schedule in schedules:
        agent_services.agent_schedule_create(
            agent=agent,
            name=schedule,
            task="agents.post",
            schedule="every day at 9am",
            params={"agent": agent.slug, "topic": "news"},
        )
    return agent


def enabled() -> dict[str, bool]:
    return dict(PeriodicTask.objects.values_list("name", "enabled"))


# --- pause, resume, run --agent ------------------------------------------------------------------


def test_it_pauses_resumes_and_runs_every_schedule_of_an_agent():
    agent_with_schedules("Poster", "poster: morning", "poster: evening")
    create("someone else's")

    paused = scheduler("pause", "--agent", "poster", "--note", "campaign over", "--until", "2h")
    after_pause = enabled()
    note = scheduler_json("show", "poster: morning", "--json")["pause"]["note"]
    resumed = scheduler("resume", "--agent", "poster")
    runs = scheduler_json("run", "--agent", "poster", "--json")

    assert paused.strip() == (
        "Paused 2 schedules of agent 'poster': poster: evening, poster: morning."
    )
    assert after_pause == {
        "poster: morning": False,
        "poster: evening": False,
        "someone else's": True,
    }
    assert note == "campaign over"
    assert resumed.startswith("Resumed 2 schedules of agent 'poster'")
    assert all(enabled().values())
    assert sorted(runs["runs"]) == ["poster: evening", "poster: morning"]
    assert runs["owner"] == {"type": "agent", "key": "poster"}
    run_now = AuditEntry.objects.filter(action="run_now", source=Source.CLI)
    assert sorted(run_now.values_list("periodic_task_name", flat=True)) == [
        "poster: evening",
        "poster: morning",
    ]


def test_an_agent_without_schedules_is_nothing_to_do():
    make_agent("Quiet")

    assert "has no schedules" in scheduler("pause", "--agent", "quiet")
    assert "No paused schedule" in scheduler("resume", "--agent", "quiet")
    assert "has no schedules" in scheduler("run", "--agent", "quiet")
    assert not AuditEntry.objects.exists()


GROUP_REFUSALS = [
    (["pause", "--agent", "nobody"], "no agent with the slug or id 'nobody'"),
    (["resume", "--agent", "nobody"], "no agent with the slug or id 'nobody'"),
    (["run", "--agent", "nobody"], "no agent with the slug or id 'nobody'"),
    (["pause", "--tournament", "999"], "no tournament with the id or name '999'"),
    (["run", "--tournament", "999"], "no tournament with the id or name '999'"),
    (["pause", "poster: morning", "--agent", "poster"], "one of them"),
    (["pause"], "one of them"),
    (["run", "--agent", "poster", "--wait"], "--wait waits for one run: not with --agent"),
    (["pause", "--agent", "poster", "--until", "yesterday"], "until"),
]


@pytest.mark.parametrize(("arguments", "message"), GROUP_REFUSALS)
def test_bad_group_input_exits_1_and_changes_nothing(arguments, message):
    agent_with_schedules("Poster", "poster: morning")
    before = enabled()
    entries = AuditEntry.objects.count()

    with pytest.raises(CommandError) as error:
        scheduler(*arguments)

    assert message in str(error.value)
    assert error.value.returncode == 1
    assert enabled() == before
    assert AuditEntry.objects.count() == entries


def test_one_schedule_outside_the_catalog_runs_none_of_the_group():
    agent = agent_with_schedules("Poster", "poster: morning")
    agent_services.agent_schedule_create(
        agent=agent,
        name="poster: legacy",
        task="agents.post",
        schedule="hourly",
        params={"agent": agent.slug, "topic": "old"},
    )
    PeriodicTask.objects.filter(name="poster: legacy").update(task="billing.old_task")

    with pytest.raises(CommandError, match="outside the catalog"):
        scheduler("run", "--agent", "poster")

    assert not AuditEntry.objects.filter(action="run_now").exists()


# --- --tournament --------------------------------------------------------------------------------


def test_it_pauses_resumes_and_runs_a_live_tournaments_periodic_task():
    tournament = tournament_services.tournament_start(tournament=make_tournament())
    assert tournament.periodic_task is not None
    name = tournament.periodic_task.name

    paused = scheduler_json("pause", "--tournament", str(tournament.pk), "--json")
    off = PeriodicTask.objects.get(name=name).enabled
    scheduler("resume", "--tournament", tournament.name)
    runs = scheduler_json("run", "--tournament", str(tournament.pk), "--json")

    assert paused == {
        "owner": {"type": "tournament", "key": str(tournament.pk)},
        "action": "paused",
        "schedules": [name],
    }
    assert off is False
    assert PeriodicTask.objects.get(name=name).enabled
    assert list(runs["runs"]) == [name]


def test_a_finished_tournament_is_paused_but_not_resumed_nor_run():
    tournament = tournament_services.tournament_start(tournament=make_tournament())
    tournament_services.tournament_end(tournament=tournament)

    scheduler("pause", "--tournament", str(tournament.pk))
    for verb in ("resume", "run"):
        with pytest.raises(CommandError, match="is finished: only a live tournament's agents run"):
            scheduler(verb, "--tournament", str(tournament.pk))

    assert not AuditEntry.objects.filter(action__in=["enabled", "run_now"]).exists()


def test_a_tournament_not_started_has_no_schedule_yet():
    tournament = make_tournament()

    output = scheduler("pause", "--tournament", str(tournament.pk))

    assert output.strip() == f"Tournament '{tournament.pk}' has no schedules: nothing was paused."


# --- clear ---------------------------------------------------------------------------------------


def test_clear_without_confirm_lists_what_would_change_and_exits_non_zero():
    create("news: morning")
    create("news: evening")
    create("backup")

    with pytest.raises(CommandError) as error:
        scheduler("clear", "--name-contains", "NEWS")

    assert "2 periodic tasks would be disabled: nothing was changed; add --confirm" in str(
        error.value
    )
    assert error.value.returncode == 1
    assert all(enabled().values())


def test_clear_disables_what_matches_and_audits_each():
    create("news: morning")
    scheduler("create", "cleanup", "every day at 3am", "--task", "scheduler.cleanup_results")
    create("news: old", "0 9 * * *", "--disabled")

    document = scheduler_json("clear", "--task", "scheduler.ping", "--confirm", "--json")

    assert document == {
        "action": "disable",
        "confirmed": True,
        "schedules": ["news: morning"],  # the disabled one is not changed again
        "changed": 1,
    }
    assert enabled() == {"news: morning": False, "cleanup": True, "news: old": False}
    entry = AuditEntry.objects.get(action="disabled")
    assert (entry.periodic_task_name, entry.source) == ("news: morning", Source.CLI)


def test_clear_delete_deletes_an_agents_schedules_only():
    agent_with_schedules("Poster", "poster: morning", "poster: evening")
    create("keep me")

    output = scheduler("clear", "--agent", "poster", "--delete", "--confirm")

    assert output.splitlines()[0] == "Deleted 2 periodic tasks:"
    assert list(PeriodicTask.objects.values_list("name", flat=True)) == ["keep me"]
    assert AuditEntry.objects.filter(action="deleted").count() == 2


def test_clear_with_every_filter_and_no_match_changes_nothing_and_exits_0():
    create("news")

    output = scheduler("clear", "--task", "scheduler.ping", "--queue", "maintenance", "--confirm")

    assert output.strip() == "No periodic task to disable: nothing matches."
    assert enabled() == {"news": True}


CLEAR_REFUSALS = [
    (["--queue", "nowhere"], "--queue: unknown queue 'nowhere'"),
    (["--agent", "nobody"], "no agent with the slug or id 'nobody'"),
    (["--tournament", "999"], "no tournament with the id or name '999'"),
]


@pytest.mark.parametrize(("arguments", "message"), CLEAR_REFUSALS)
def test_clear_bad_filters_exit_1_and_change_nothing(arguments, message):
    create("news")

    with pytest.raises(CommandError, match=message):
        scheduler("clear", "--confirm", "--delete", *arguments)

    assert enabled() == {"news": True}
    assert not AuditEntry.objects.exclude(action="created").exists()
