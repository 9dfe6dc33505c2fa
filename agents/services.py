"""Writes for agents, their schedules, sessions, messages, posts and mentions.

The conversation path: `message_receive` stores what a user said once per source message (its
idempotency key is unique in the database), `message_answer` runs the agent's brain and stores
the reply once per user message (the reply's key is "reply:<user message id>", unique too), so
a message delivered twice, or a task redelivered after a worker died, is answered once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify
from django_celery_beat.models import PeriodicTask

from agents.brains import ChatMessage, get_brain, validate_brain_config
from agents.brains.base import Brain, BrainConfigError, BrainReply
from agents.errors import PermanentError
from agents.models import Agent, AgentSchedule, Mention, Message, Post, Session
from agents.owners import agent_schedule_link
from scheduler.live import event_record
from scheduler.models import Source
from scheduler.protocol import OBJECT_HEADER, object_header
from scheduler.services import ScheduleError, schedule_create, schedules_resume

# Messages the brain sees after the session's summary.
CONTEXT_MESSAGES = 20


class AgentInputError(ValueError):
    """Bad input, by field: {"field": "what is wrong"}."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


# --- Agents --------------------------------------------------------------------------------------


def agent_brain(agent: Agent) -> Brain:
    try:
        return get_brain(agent.brain, agent.brain_config)
    except BrainConfigError as exc:  # edited in the database since it was checked
        raise PermanentError("brain_config", f"agent {agent.slug!r}: {exc}") from exc


def agent_create(
    *,
    name: str,
    kind: str = Agent.Kind.CHAT,
    brain: str = Agent.Brain.RULES,
    brain_config: Any = None,
    slug: str = "",
    owner: Any = None,
    webhook_url: str = "",
    is_active: bool = True,
) -> Agent:
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "an agent needs a name"
    slug = slug or slugify(name)[:100]
    if not slug:
        errors["slug"] = "cannot make a slug of this name: give one"
    elif Agent.objects.filter(slug=slug).exists():
        errors["slug"] = f"an agent with the slug {slug!r} exists"
    if kind not in Agent.Kind.values:
        errors["kind"] = f"unknown kind {kind!r} ({', '.join(Agent.Kind.values)})"
    config = _checked_config(brain, brain_config or {}, errors)
    if errors:
        raise AgentInputError(errors)
    return Agent.objects.create(
        name=name.strip(),
        slug=slug,
        kind=kind,
        brain=brain,
        brain_config=config,
        owner=owner if getattr(owner, "is_authenticated", False) else None,
        webhook_url=webhook_url,
        is_active=is_active,
    )


def _checked_config(brain: str, config: Any, errors: dict[str, str]) -> dict[str, Any]:
    try:
        return validate_brain_config(brain, config)
    except BrainConfigError as exc:
        for field, message in exc.errors.items():
            key = field if field in ("brain", "brain_config") else f"brain_config.{field}"
            errors[key] = message
        return {}


def agent_heartbeat(*, agent: Agent) -> None:
    Agent.objects.filter(pk=agent.pk).update(heartbeat_at=timezone.now())


def agent_schedule_create(
    *,
    agent: Agent,
    name: str,
    task: str,
    schedule: str,
    params: Any = None,
    tz: str = "UTC",
    actor: Any = None,
    source: str | None = None,
) -> AgentSchedule:
    """A periodic task owned by `agent`, made by the scheduler's own service (same checks).

    An `agent` parameter, when given, must name `agent`; a task that takes none (a backup)
    belongs to `agent` all the same.
    """
    if isinstance(params, dict) and params.get("agent", agent.slug) != agent.slug:
        raise ScheduleError.on(
            "params",
            f"agent: the schedule belongs to agent {agent.slug!r}, not {params['agent']!r}",
        )
    with transaction.atomic():
        periodic_task = schedule_create(
            name=name,
            task=task,
            schedule=schedule,
            params=params,
            tz=tz,
            actor=actor,
            source=source or Source.SYSTEM,
        )
        # Its runs belong to the agent: events of them reach the agent's group too. (A task
        # with an `agent` parameter is linked by the scheduler's service already: agents/owners.py.)
        headers = json.loads(periodic_task.headers or "{}")
        if headers.get(OBJECT_HEADER) != object_header("agent", agent.pk)[OBJECT_HEADER]:
            headers.update(object_header("agent", agent.pk))
            periodic_task.headers = json.dumps(headers)
            periodic_task.save(update_fields=["headers"])
        agent_schedule_link(periodic_task, agent.pk)
        return AgentSchedule.objects.get(periodic_task=periodic_task)


def agents_schedule_names(*, agents: Any) -> list[str]:
    """The names of the periodic tasks of `agents` (a queryset or a list of agents)."""
    return list(
        PeriodicTask.objects.filter(agent_schedule__agent__in=agents)
        .order_by("name")
        .values_list("name", flat=True)
    )


def agent_schedules_resume(*, agents: Any, actor: Any = None) -> int:
    """Resume every paused periodic task of `agents`; how many were resumed. (Pausing them, with
    why and until when, is the scheduler's `schedules_pause` on `agents_schedule_names`.)"""
    names = agents_schedule_names(agents=agents)
    return len(schedules_resume(names=names, actor=actor, source=Source.ADMIN))


# --- Sessions and messages -----------------------------------------------------------------------


def session_open(
    *,
    agent: Agent,
    channel: str = Session.Channel.WEB,
    external_id: str = "",
    user: Any = None,
) -> Session:
    """A new web session, or the open session of an external conversation (one per chat id)."""
    errors: dict[str, str] = {}
    if channel not in Session.Channel.values:
        errors["channel"] = f"unknown channel {channel!r} ({', '.join(Session.Channel.values)})"
    elif channel != Session.Channel.WEB and not external_id:
        errors["external_id"] = f"a {channel} session needs the conversation's external id"
    if not agent.is_active:
        errors["agent"] = f"agent {agent.slug!r} is paused"
    if errors:
        raise AgentInputError(errors)
    owner = user if getattr(user, "is_authenticated", False) else None
    if not external_id:
        return Session.objects.create(agent=agent, channel=channel, user=owner)
    try:
        with transaction.atomic():
            session, _ = Session.objects.get_or_create(
                agent=agent, channel=channel, external_id=external_id, defaults={"user": owner}
            )
    except IntegrityError:  # opened by a concurrent delivery
        session = Session.objects.get(agent=agent, channel=channel, external_id=external_id)
    if session.status == Session.Status.CLOSED:
        Session.objects.filter(pk=session.pk).update(status=Session.Status.OPEN)
        session.status = Session.Status.OPEN
    return session


@dataclass(frozen=True)
class Received:
    message: Message
    created: bool  # False: the same source message was delivered before


def message_receive(
    *, session: Session, content: str, idempotency_key: str = "", task_id: str = ""
) -> Received:
    """Store what the user said, once per `idempotency_key` (empty: always a new message)."""
    content = content.strip()
    if not content:
        raise AgentInputError({"content": "a message needs some text"})
    if len(content) > settings.AGENT_MESSAGE_MAX_LENGTH:
        raise AgentInputError(
            {"content": f"at most {settings.AGENT_MESSAGE_MAX_LENGTH} characters"}
        )
    key = idempotency_key or None
    if key is not None:
        existing = Message.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return Received(existing, created=False)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                session=session,
                role=Message.Role.USER,
                content=content,
                idempotency_key=key,
                task_id=task_id,
            )
            Session.objects.filter(pk=session.pk).update(
                last_message_at=message.created_at, followup_due_at=None
            )
    except IntegrityError:  # the same message, stored by a concurrent delivery
        return Received(Message.objects.get(idempotency_key=key), created=False)
    message_publish(message)
    return Received(message, created=True)


def message_answer(*, message: Message, task_id: str = "") -> Message:
    """The agent's reply to user `message`: made once, however often this is called."""
    key = f"reply:{message.pk}"
    existing = Message.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    session = Session.objects.select_related("agent").get(pk=message.session_id)
    reply = agent_brain(session.agent).respond(
        messages=conversation_of(session, until=message),
        summary=session.summary,
        agent_name=session.agent.name,
    )
    return _store_reply(session=session, reply=reply, key=key, reply_to=message, task_id=task_id)


def conversation_of(session: Session, *, until: Message | None = None) -> list[ChatMessage]:
    """The messages the brain sees: those after the summary, the last CONTEXT_MESSAGES."""
    messages = Message.objects.filter(session=session, pk__gt=session.summarized_until)
    if until is not None:
        messages = messages.filter(pk__lte=until.pk)
    recent = list(messages.order_by("-created_at", "-id")[:CONTEXT_MESSAGES])
    return [ChatMessage(role=m.role, content=m.content) for m in reversed(recent)]


def _store_reply(
    *,
    session: Session,
    reply: BrainReply,
    key: str,
    reply_to: Message | None,
    task_id: str,
) -> Message:
    now = timezone.now()
    try:
        with transaction.atomic():
            answer = Message.objects.create(
                session=session,
                role=Message.Role.ASSISTANT,
                content=reply.content,
                idempotency_key=key,
                reply_to=reply_to,
                task_id=task_id,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                created_at=now,
            )
            Session.objects.filter(pk=session.pk).update(
                last_message_at=now,
                followup_due_at=now + timedelta(seconds=settings.AGENT_FOLLOWUP_AFTER),
            )
    except IntegrityError:  # a concurrent run answered first: that answer stands
        return Message.objects.get(idempotency_key=key)
    message_publish(answer)
    return answer


def message_publish(message: Message) -> None:
    """Send the message live to the session's group (the chat page), after commit."""
    event_record(
        type="session.message",
        task_id=message.task_id,
        state=message.role.upper(),
        message=message.content[:200],
        object_type="session",
        object_id=message.session_id,
        payload={"message": message_payload(message)},
    )


def message_payload(message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "session": message.session_id,
        "role": message.role,
        "content": message.content,
        "created_at": message.created_at.isoformat(),
        "task_id": message.task_id,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "reply_to": message.reply_to_id,
    }


def unsummarized_count(session: Session) -> int:
    return Message.objects.filter(session=session, pk__gt=session.summarized_until).count()


def message_mark_delivered(*, message: Message) -> None:
    Message.objects.filter(pk=message.pk).update(delivered_at=timezone.now())


def session_summarize(*, session: Session, keep: int | None = None) -> bool:
    """Fold all but the last `keep` messages into the summary; whether there was anything."""
    keep = settings.AGENT_SUMMARY_KEEP if keep is None else keep
    messages = list(
        Message.objects.filter(session=session, pk__gt=session.summarized_until).order_by(
            "created_at", "id"
        )
    )
    folded = messages[: max(len(messages) - keep, 0)]
    if not folded:
        return False
    agent = Agent.objects.get(pk=session.agent_id)
    reply = agent_brain(agent).summarize(
        messages=[ChatMessage(role=m.role, content=m.content) for m in folded],
        previous_summary=session.summary,
    )
    Session.objects.filter(pk=session.pk).update(
        summary=reply.content, summarized_until=folded[-1].pk
    )
    session.summary, session.summarized_until = reply.content, folded[-1].pk
    return True


def session_follow_up(*, session: Session, task_id: str = "") -> Message | None:
    """After a silence, the agent's nudge; None when the user spoke meanwhile (or it was sent)."""
    session = Session.objects.select_related("agent").get(pk=session.pk)
    last = Message.objects.filter(session=session).order_by("-created_at", "-id").first()
    if (
        last is None
        or last.role != Message.Role.ASSISTANT
        or session.status != Session.Status.OPEN
        or session.followup_due_at is None
    ):
        return None
    key = f"followup:{last.pk}"
    if Message.objects.filter(idempotency_key=key).exists():
        return None
    context = [
        *conversation_of(session),
        ChatMessage(
            role=Message.Role.SYSTEM,
            content="The user has been silent for a while: write one short, friendly follow-up.",
        ),
    ]
    reply = agent_brain(session.agent).respond(
        messages=context, summary=session.summary, agent_name=session.agent.name
    )
    answer = _store_reply(session=session, reply=reply, key=key, reply_to=None, task_id=task_id)
    # One nudge per silence: the next one waits for the user to speak again.
    Session.objects.filter(pk=session.pk).update(followup_due_at=None)
    return answer


# --- Posts and mentions --------------------------------------------------------------------------


def post_compose(*, agent: Agent, topic: str, task_id: str = "") -> Post:
    reply = agent_brain(agent).compose_post(topic=topic, agent_name=agent.name)
    post = Post.objects.create(
        agent=agent,
        topic=topic,
        content=reply.content,
        task_id=task_id,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
    )
    event_record(
        type="agent.post",
        task_id=task_id,
        state="PUBLISHED",
        message=f"{topic}: {reply.content[:150]}",
        object_type="agent",
        object_id=agent.pk,
        payload={"post": post.pk, "topic": topic},
    )
    return post


def mention_receive(
    *, agent: Agent, external_id: str, content: str, author: str = "", source: str = "webhook"
) -> tuple[Mention, bool]:
    """Store a mention once per (source, external id); whether it is new."""
    if not content.strip():
        raise AgentInputError({"content": "a mention needs some text"})
    if not external_id:
        raise AgentInputError({"external_id": "a mention needs its id on the source"})
    try:
        with transaction.atomic():
            return Mention.objects.get_or_create(
                agent=agent,
                source=source,
                external_id=external_id,
                defaults={"content": content.strip(), "author": author},
            )
    except IntegrityError:
        return Mention.objects.get(agent=agent, source=source, external_id=external_id), False


def mention_reply(*, mention: Mention, task_id: str = "") -> bool:
    """Answer `mention` unless it was answered; whether this call answered it."""
    if mention.replied_at is not None:
        return False
    agent = Agent.objects.get(pk=mention.agent_id)
    reply = agent_brain(agent).respond(
        messages=[ChatMessage(role=Message.Role.USER, content=mention.content)],
        agent_name=agent.name,
    )
    # Claimed with a conditional UPDATE: two runs at once answer it once.
    claimed = Mention.objects.filter(pk=mention.pk, replied_at__isnull=True).update(
        reply=reply.content, replied_at=timezone.now(), task_id=task_id
    )
    if claimed:
        mention.refresh_from_db()
    return bool(claimed)


def sessions_close_idle(*, now: datetime | None = None, idle_seconds: int | None = None) -> int:
    """Close the open sessions silent for `idle_seconds` (default SESSION_IDLE_CLOSE; 0: none):
    no follow-up is due on them any more. How many; one UPDATE, whatever their number."""
    idle = settings.SESSION_IDLE_CLOSE if idle_seconds is None else idle_seconds
    if idle <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(seconds=idle)
    silent = Q(last_message_at__lt=cutoff) | Q(last_message_at__isnull=True, created_at__lt=cutoff)
    return Session.objects.filter(silent, status=Session.Status.OPEN).update(
        status=Session.Status.CLOSED, followup_due_at=None, updated_at=timezone.now()
    )
