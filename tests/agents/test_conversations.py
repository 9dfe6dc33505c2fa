"""Conversations, posts and mentions: the services and task bodies (in the test process), and
the dispatcher in both modes. tests/agents/test_pipeline.py runs them on a real worker."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from agents import services, tasks
from agents.dispatch import dispatch_message
from agents.errors import PermanentError
from agents.models import Agent, Mention, Message, Post, Session
from agents.services import AgentInputError
from agents.signatures import HEADER, signature_verify
from scheduler.models import TaskEvent

pytestmark = pytest.mark.django_db


def _agent(**fields: Any) -> Agent:
    defaults: dict[str, Any] = {"name": "Helper", "slug": "helper"}
    defaults.update(fields)
    return services.agent_create(**defaults)


def _session(agent: Agent | None = None, **fields: Any) -> Session:
    return services.session_open(agent=agent or _agent(), **fields)


def _say(session: Session, text: str, key: str = "") -> dict[str, Any]:
    result = tasks.process_message.apply(
        kwargs={"session_id": session.pk, "text": text, "idempotency_key": key}
    )
    return dict(result.get())


# --- Agents --------------------------------------------------------------------------------------


def test_it_names_every_bad_field_of_a_new_agent():
    _agent(slug="taken")

    with pytest.raises(AgentInputError) as caught:
        services.agent_create(
            name="x", slug="taken", kind="wizard", brain="rules", brain_config={"echo": "often"}
        )

    assert set(caught.value.errors) == {"slug", "kind", "brain_config.echo"}
    assert Agent.objects.count() == 1


def test_it_refuses_an_unknown_brain():
    with pytest.raises(AgentInputError) as caught:
        services.agent_create(name="x", brain="oracle")

    assert "unknown brain" in caught.value.errors["brain"]


# --- Messages ------------------------------------------------------------------------------------


def test_a_message_is_answered_by_the_agents_brain():
    session = _session(_agent(brain_config={"keywords": {"price": "It is free."}}))

    result = _say(session, "What is the price?")

    user, reply = session.messages.order_by("id")
    assert (user.role, user.content) == ("user", "What is the price?")
    assert (reply.role, reply.content) == ("assistant", "It is free.")
    assert reply.reply_to == user
    assert reply.completion_tokens > 0
    assert result["content"] == "It is free."
    assert result["duplicate"] is False
    session.refresh_from_db()
    assert session.last_message_at == reply.created_at
    assert session.followup_due_at is not None


def test_the_same_message_delivered_twice_is_answered_once():
    session = _session(_agent(), channel="telegram", external_id="chat-7")

    first = _say(session, "hello", key="telegram:42")
    second = _say(session, "hello", key="telegram:42")

    assert session.messages.filter(role="user").count() == 1
    assert session.messages.filter(role="assistant").count() == 1
    assert second["duplicate"] is True
    assert second["reply"] == first["reply"]


def test_the_demo_assistant_answers_every_topic_its_greeting_offers():
    from django.core.management import call_command

    from agents.demo import DEMO_AGENT_SLUG

    call_command("seed_demo", stdout=io.StringIO())
    session = Session.objects.get(agent__slug=DEMO_AGENT_SLUG)
    greeting = session.messages.get().content
    offered = re.search(r"about (.+)\.", greeting)
    assert offered is not None, greeting
    topics = re.split(r",\s*|\s+or\s+", offered.group(1))
    assert topics == ["schedules", "tasks", "agents"]

    for topic in topics:
        reply = _say(session, f"Tell me about {topic}")["content"]
        assert not reply.startswith("You said"), (topic, reply)


def test_a_reply_is_made_once_even_when_asked_for_twice():
    session = _session()
    received = services.message_receive(session=session, content="hi")

    first = services.message_answer(message=received.message)
    second = services.message_answer(message=received.message)

    assert first.pk == second.pk
    assert Message.objects.filter(idempotency_key=f"reply:{received.message.pk}").count() == 1


def test_it_refuses_an_empty_or_too_long_message(settings):
    settings.AGENT_MESSAGE_MAX_LENGTH = 10
    session = _session()

    for text, says in (("   ", "some text"), ("x" * 11, "at most 10")):
        with pytest.raises(AgentInputError) as caught:
            services.message_receive(session=session, content=text)
        assert says in caught.value.errors["content"]
    assert not Message.objects.exists()


def test_an_unknown_session_fails_at_once_with_its_code():
    result = tasks.process_message.apply(kwargs={"session_id": 999_999, "text": "hi"}, throw=False)

    assert result.failed()
    assert isinstance(result.result, PermanentError)
    assert result.result.error_code == "session_not_found"


def test_each_message_is_published_to_the_sessions_group():
    session = _session()

    _say(session, "hello")

    events = TaskEvent.objects.filter(
        type="session.message", object_type="session", object_id=str(session.pk)
    ).order_by("id")
    assert [event.payload["message"]["role"] for event in events] == ["user", "assistant"]


# --- Summaries and follow-ups --------------------------------------------------------------------


def test_a_long_session_is_summarised_keeping_the_last_messages(settings):
    settings.AGENT_SUMMARY_KEEP = 2
    session = _session()
    for n in range(3):
        _say(session, f"Message number {n} talks about the weekly report.")

    tasks.summarize_session.apply(kwargs={"session_id": session.pk}).get()

    session.refresh_from_db()
    kept = list(session.messages.filter(pk__gt=session.summarized_until))
    assert len(kept) == 2
    assert "weekly report" in session.summary
    assert services.conversation_of(session)[0].content == kept[0].content


def test_the_periodic_check_queues_summaries_of_long_sessions(settings, monkeypatch):
    settings.AGENT_SUMMARY_AFTER = 3
    short, long = _session(), _session(_agent(name="Other", slug="other"))
    _say(short, "one")
    for n in range(2):
        _say(long, f"message {n}")
    queued: list[int] = []
    monkeypatch.setattr(
        tasks.summarize_session, "delay", lambda **kw: queued.append(kw["session_id"])
    )

    assert tasks.check_sessions_for_summarization.apply().get() == {"queued": 1}
    assert queued == [long.pk]


def test_a_silent_session_gets_one_follow_up(monkeypatch):
    session = _session()
    _say(session, "hello")
    queued: list[int] = []
    monkeypatch.setattr(tasks.send_followup, "delay", lambda **kw: queued.append(kw["session_id"]))

    assert tasks.check_sessions_for_followups.apply().get() == {"queued": 0}
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert tasks.check_sessions_for_followups.apply().get() == {"queued": 1}
        first = tasks.send_followup.apply(kwargs={"session_id": session.pk}).get()
        second = tasks.send_followup.apply(kwargs={"session_id": session.pk}).get()

    assert queued == [session.pk]
    assert first["sent"] is True
    assert second["sent"] is False
    assert session.messages.filter(role="assistant").count() == 2


def test_no_follow_up_when_the_user_spoke_last():
    session = _session()
    services.message_receive(session=session, content="are you there?")
    Session.objects.filter(pk=session.pk).update(followup_due_at=timezone.now())

    assert tasks.send_followup.apply(kwargs={"session_id": session.pk}).get()["sent"] is False


# --- Posts, mentions and webhooks ----------------------------------------------------------------


def test_a_post_is_written_and_delivered_signed_to_the_agents_webhook(receiver):
    agent = _agent(webhook_url=receiver.url, brain_config={"post_template": "{topic}: read on."})

    result = tasks.post.apply(kwargs={"agent": agent.slug, "topic": "technology news"}).get()

    post = Post.objects.get()
    assert post.content == "technology news: read on."
    assert post.status == Post.Status.DELIVERED
    assert result["delivered"] is True
    [(headers, body)] = receiver.received
    signature_verify(agent.webhook_secret, body, headers[HEADER])  # raises unless signed now
    assert json.loads(body)["post"]["content"] == post.content


def test_a_reply_to_an_external_session_is_delivered_once(receiver):
    agent = _agent(webhook_url=receiver.url)
    session = _session(agent, channel="webhook", external_id="conv-1")
    reply = services.message_answer(
        message=services.message_receive(session=session, content="hi").message
    )

    first = tasks.send_response.apply(kwargs={"message_id": reply.pk}).get()
    second = tasks.send_response.apply(kwargs={"message_id": reply.pk}).get()

    assert (first["delivered"], second["delivered"]) == (True, False)
    [body] = receiver.bodies()
    assert body["conversation"] == "conv-1"
    assert body["message"]["content"] == reply.content


def test_a_webhook_that_refuses_fails_the_delivery_with_its_code(receiver):
    receiver.status = 410
    agent = _agent(webhook_url=receiver.url)

    result = tasks.post.apply(kwargs={"agent": agent.slug, "topic": "x"}, throw=False)

    assert result.failed()
    assert result.result.error_code == "webhook_rejected"


def test_mentions_of_the_window_are_answered_once():
    agent = _agent()
    services.mention_receive(agent=agent, external_id="m1", content="Nice post!", author="ann")
    old, _ = services.mention_receive(agent=agent, external_id="m0", content="Old one")
    Mention.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=2))
    _, created = services.mention_receive(agent=agent, external_id="m1", content="dup")

    first = tasks.reply.apply(kwargs={"agent": agent.slug, "time_value": 1, "time_unit": "hours"})
    second = tasks.reply.apply(kwargs={"agent": agent.slug, "time_value": 1, "time_unit": "hours"})

    assert created is False
    assert first.get()["answered"] == 1
    assert second.get()["answered"] == 0
    assert Mention.objects.get(external_id="m1").reply
    assert Mention.objects.get(external_id="m0").replied_at is None


def test_the_catalog_checks_the_agent_named_in_schedule_params():
    from scheduler.catalog import ParameterError, load_catalog

    entry = load_catalog().get("agents.post")
    with pytest.raises(ParameterError) as caught:
        entry.validate({"agent": "nobody", "topic": "x"})

    assert "nobody" in str(caught.value)


# --- The dispatcher ------------------------------------------------------------------------------


def test_the_dispatcher_queues_after_commit_when_celery_is_on(
    settings, django_capture_on_commit_callbacks
):
    settings.CELERY_ENABLED = True
    session = _session()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = dispatch_message(session=session, text="hello", source="web", message_id="1")

    assert result["queued"] is True
    assert result["task_id"]
    assert result["trace_id"]
    assert len(callbacks) == 1
    assert not Message.objects.exists()  # stored by the task, not by the caller


def test_the_dispatcher_answers_in_the_caller_when_celery_is_off(settings):
    settings.CELERY_ENABLED = False
    session = _session()

    result = dispatch_message(session=session, text="hello", message_id="9")
    again = dispatch_message(session=session, text="hello", message_id="9")

    assert result["queued"] is False
    assert result["reply"]["role"] == "assistant"
    assert again["duplicate"] is True
    assert again["reply"]["id"] == result["reply"]["id"]
    assert session.messages.count() == 2


def test_the_dispatcher_refuses_bad_input_before_queuing(settings):
    settings.CELERY_ENABLED = True
    session = _session()
    Session.objects.filter(pk=session.pk).update(status=Session.Status.CLOSED)
    session.refresh_from_db()

    with pytest.raises(AgentInputError) as caught:
        dispatch_message(session=session, text=" ")

    assert set(caught.value.errors) == {"text", "session"}


@pytest.mark.django_db
def test_the_stale_session_check_closes_only_the_open_sessions_silent_past_the_idle_time(settings):
    from datetime import timedelta

    from django.utils import timezone

    from agents.models import Session
    from agents.tasks import close_stale_sessions
    from tests.factories import make_agent, make_session

    settings.SESSION_IDLE_CLOSE = 3600
    agent = make_agent()
    now = timezone.now()
    silent = make_session(agent)
    talking = make_session(agent)
    never_spoke = make_session(agent)
    Session.objects.filter(pk=silent.pk).update(
        last_message_at=now - timedelta(hours=2), followup_due_at=now
    )
    Session.objects.filter(pk=talking.pk).update(last_message_at=now - timedelta(minutes=5))
    Session.objects.filter(pk=never_spoke.pk).update(created_at=now - timedelta(hours=3))

    assert close_stale_sessions() == {"closed": 2}

    statuses = dict(Session.objects.values_list("pk", "status"))
    assert statuses == {silent.pk: "closed", talking.pk: "open", never_spoke.pk: "closed"}
    assert Session.objects.get(pk=silent.pk).followup_due_at is None
    settings.SESSION_IDLE_CLOSE = 0
    Session.objects.update(status="open")
    assert close_stale_sessions() == {"closed": 0}  # 0: never
