"""The agents' admin through the Django test client: the brain config checked per brain, the
schedules inline with "Run now", pause/resume, the masked secret, sessions and read-only lists.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from agents import services
from agents.admin import masked
from agents.models import Agent, AgentSchedule, Mention, Post, Session
from scheduler.models import AuditEntry
from tests.clients import client_for
from tests.factories import make_schedule, user_with
from tests.forms import agent_form

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:agents_agent_changelist")
ADD = reverse("admin:agents_agent_add")


def _agent(name: str = "Poster", **fields: Any) -> Agent:
    return services.agent_create(name=name, **fields)


def _schedule(agent: Agent, name: str, schedule: str = "every day at 9am") -> AgentSchedule:
    return services.agent_schedule_create(
        agent=agent,
        name=name,
        task="agents.post",
        schedule=schedule,
        params={"agent": agent.slug, "topic": "news"},
    )


def _errors(response: Any) -> str:
    form = response.context["adminform"].form
    return " ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())


# --- The agent form ------------------------------------------------------------------------------


def test_it_adds_an_agent_with_its_brain_config_normalised(admin):
    response = admin.post(ADD, agent_form(brain_config='{"keywords": {"price": "Free."}}'))

    assert response.status_code == 302, _errors(response)
    agent = Agent.objects.get(slug="helper")
    assert agent.brain_config["keywords"] == {"price": "Free."}
    assert "greeting" in agent.brain_config  # the brain's defaults, filled in


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ('{"greting": "hi"}', "brain_config: greting:"),
        ('{"summary_sentences": 0}', "brain_config: summary_sentences:"),
        ('{"keywords": {"!!": "x"}}', "brain_config: keywords"),
        ('{"keywords": "price"}', "brain_config: keywords"),
        ('["not", "an", "object"]', "brain_config:"),
    ],
)
def test_it_names_the_key_of_a_bad_brain_config_and_saves_nothing(admin, config, words):
    response = admin.post(ADD, agent_form(brain_config=config))

    assert response.status_code == 200
    assert words in _errors(response)
    assert not Agent.objects.exists()


def test_it_checks_the_config_against_the_brain_chosen(admin):
    # A key of the rules brain is not one of the openai brain's.
    response = admin.post(ADD, agent_form(brain="openai", brain_config='{"greeting": "hi"}'))

    assert response.status_code == 200
    assert "brain_config: greeting:" in _errors(response)


def test_it_shows_the_webhook_secret_masked_and_never_takes_it_from_theagent_form(admin):
    agent = _agent(webhook_url="https://example.com/hook")
    url = reverse("admin:agents_agent_change", args=[agent.pk])

    page = admin.get(url).content.decode()
    admin.post(
        url, agent_form(name=agent.name, slug=agent.slug, webhook_secret="chosen-by-attacker")
    )

    assert agent.webhook_secret not in page
    assert masked(agent.webhook_secret) in page
    assert agent.webhook_secret[-4:] in page
    assert Agent.objects.get(pk=agent.pk).webhook_secret == agent.webhook_secret


@pytest.mark.parametrize(
    ("secret", "shown"),
    [("", ""), ("short", "••••••••"), ("a-long-secret-1234", "••••••••1234")],
)
def test_it_masks_all_but_the_last_four_characters(secret, shown):
    assert masked(secret) == shown


# --- Schedules inline, run now, pause and resume --------------------------------------------------


def test_it_lists_the_agents_schedules_inline(admin):
    agent = _agent()
    morning = _schedule(agent, "poster morning")
    _schedule(agent, "poster evening", "every day at 6pm")
    PeriodicTask.objects.filter(pk=morning.periodic_task_id).update(enabled=False)
    TaskResult.objects.create(
        task_id="t-1",
        task_name="agents.post",
        status="FAILURE",
        periodic_task_name="poster morning",
    )
    other = make_schedule(name="somebody else's")

    page = admin.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()

    assert "poster morning" in page
    assert "poster evening" in page
    assert "somebody else" not in page
    assert (
        reverse("admin:django_celery_beat_periodictask_change", args=[morning.periodic_task_id])
        in page
    )
    assert "FAILURE" in page
    assert "never" in page
    assert page.count(">Run now</button>") == 2
    assert 'form="agent-run-now"' in page
    assert '<form id="agent-run-now" method="post"' in page
    assert PeriodicTask.objects.filter(pk=other.pk).exists()


def test_it_runs_a_schedule_now_through_the_scheduler(admin, django_capture_on_commit_callbacks):
    agent = _agent()
    schedule = _schedule(agent, "poster morning")
    url = reverse("admin:agents_agent_run_schedule", args=[agent.pk, schedule.pk])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin.post(url, follow=True)

    change_url = reverse("admin:agents_agent_change", args=[agent.pk])
    assert response.redirect_chain == [(change_url, 302)]
    entry = AuditEntry.objects.get(action="run_now")
    assert entry.periodic_task_name == "poster morning"
    assert entry.source == "admin"
    # The run is sent once the admin's transaction commits (the event of it too).
    assert [c for c in callbacks if c.__qualname__.startswith("task_enqueue.")]
    assert "Queued to run now: poster morning" in response.content.decode()


def test_it_runs_only_the_agents_own_schedules_and_only_by_post(admin):
    agent, other = _agent(), _agent("Other")
    theirs = _schedule(other, "other morning")

    wrong_agent = admin.post(reverse("admin:agents_agent_run_schedule", args=[agent.pk, theirs.pk]))
    by_get = admin.get(reverse("admin:agents_agent_run_schedule", args=[other.pk, theirs.pk]))

    assert wrong_agent.status_code == 404
    assert by_get.status_code == 405
    assert not AuditEntry.objects.filter(action="run_now").exists()


def test_it_needs_the_periodic_task_permission_to_run_a_schedule():
    agent = _agent()
    schedule = _schedule(agent, "poster morning")
    client = client_for(
        user_with(
            "agents.view_agent", "agents.change_agent", "django_celery_beat.view_periodictask"
        )
    )

    page = client.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()
    response = client.post(reverse("admin:agents_agent_run_schedule", args=[agent.pk, schedule.pk]))

    assert "poster morning" in page
    assert "Run now" not in page
    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action="run_now").exists()


def test_it_pauses_and_resumes_all_schedules_of_the_selected_agents(admin):
    agent, other = _agent(), _agent("Other")
    mine = [_schedule(agent, "poster morning"), _schedule(agent, "poster evening")]
    theirs = _schedule(other, "other morning")

    def enabled() -> dict[str, bool]:
        return dict(PeriodicTask.objects.values_list("name", "enabled"))

    asked = admin.post(CHANGELIST, {"action": "pause_schedules", "_selected_action": [agent.pk]})
    before = enabled()
    paused = admin.post(
        CHANGELIST,
        {
            "action": "pause_schedules",
            "_selected_action": [agent.pk],
            "post": "yes",
            "note": "new prompts",
            "until": "",
        },
        follow=True,
    )
    after_pause = enabled()
    listed = admin.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()
    resumed = admin.post(
        CHANGELIST, {"action": "resume_schedules", "_selected_action": [agent.pk]}, follow=True
    )

    assert "Why" in asked.content.decode()
    assert all(before.values())  # the first step asks why and until when, and pauses nothing
    assert after_pause == {"poster morning": False, "poster evening": False, "other morning": True}
    assert "2 schedules paused." in paused.content.decode()
    assert listed.count("until resumed: new prompts") == 2
    assert all(enabled().values())
    assert "2 schedules resumed." in resumed.content.decode()
    assert AuditEntry.objects.filter(action="paused").count() == len(mine)
    assert not AuditEntry.objects.filter(periodic_task_id=theirs.periodic_task_id, action="paused")


def test_it_offers_pause_and_resume_only_with_the_periodic_task_permission():
    _agent()
    without = client_for(user_with("agents.view_agent", "agents.change_agent"))
    allowed = client_for(
        user_with(
            "agents.view_agent", "agents.change_agent", "django_celery_beat.change_periodictask"
        )
    )

    assert "pause_schedules" not in without.get(CHANGELIST).content.decode()
    assert "pause_schedules" in allowed.get(CHANGELIST).content.decode()


def test_its_changelist_counts_each_agents_schedules(admin):
    agent = _agent()
    _schedule(agent, "poster morning")

    page = admin.get(CHANGELIST).content.decode()

    assert re.search(r'<td class="field-schedule_count">1</td>', page)


# --- Sessions, posts and mentions ----------------------------------------------------------------


def test_its_session_page_shows_the_messages_read_only_and_links_the_chat(admin, settings):
    settings.CELERY_ENABLED = False
    agent = _agent("Helper")
    session = services.session_open(agent=agent)
    services.message_answer(
        message=services.message_receive(session=session, content="<b>hello</b>").message
    )

    response = admin.get(reverse("admin:agents_session_change", args=[session.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "&lt;b&gt;hello&lt;/b&gt;" in page
    assert f'href="/agents/sessions/{session.pk}/"' in page
    assert 'name="messages-0-content"' not in page  # read-only
    assert page.count('<tr class="form-row') >= 2


def test_it_adds_no_session_by_hand(admin):
    assert admin.get(reverse("admin:agents_session_add")).status_code == 403


def test_its_session_list_links_each_chat_and_filters(admin):
    agent = _agent("Helper")
    session = services.session_open(agent=agent, channel="telegram", external_id="c-1")

    page = admin.get(
        reverse("admin:agents_session_changelist") + "?channel__exact=telegram"
    ).content.decode()

    assert f'href="/agents/sessions/{session.pk}/"' in page
    assert "c-1" in page


def test_posts_and_mentions_are_read_only_lists_with_filters(admin):
    agent = _agent()
    post = Post.objects.create(agent=agent, topic="news", content="Today...")
    mention = Mention.objects.create(agent=agent, external_id="m1", content="hey @poster")

    posts = admin.get(reverse("admin:agents_post_changelist") + "?status__exact=published")
    mentions = admin.get(reverse("admin:agents_mention_changelist") + "?replied_at__isempty=1")

    assert posts.status_code == 200
    assert "news" in posts.content.decode()
    assert mentions.status_code == 200
    assert "hey @poster" in mentions.content.decode()
    assert admin.get(reverse("admin:agents_post_add")).status_code == 403
    assert admin.get(reverse("admin:agents_mention_add")).status_code == 403
    post_page = admin.get(reverse("admin:agents_post_change", args=[post.pk])).content.decode()
    assert 'name="content"' not in post_page
    assert admin.post(reverse("admin:agents_mention_delete", args=[mention.pk])).status_code == 403
    assert Session.objects.count() == 0
