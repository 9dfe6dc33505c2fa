"""Agent tasks: thin, each loads its rows, calls one service and handles retries.

Errors follow agents/errors.py: a RetryableError is retried (RateLimitError after exactly its
delay, the others with exponential backoff and jitter) up to MAX_RETRIES times, then fails with
its reason; a PermanentError fails at once with its code. Either way the run is stored FAILURE
with that reason, which history and the dashboard show.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings
from django.db.models import Count, F, Q
from django.utils import timezone
from pydantic import Field, ValidationError, field_validator

from agents import crm, memory, services
from agents.errors import RETRY_POLICY, ExternalServiceError, PermanentError, RetryableError
from agents.models import Agent, Mention, Message, Post, Session
from agents.signatures import HEADER, sign
from scheduler.catalog import Params, catalog_task
from scheduler.schedules import OverlapPolicy
from scheduler.services import task_queue, task_run_with_retries
from scheduler.system import NotificationError, NotificationRejected, webhook_post

logger = logging.getLogger(__name__)


def _task_id(task: Any) -> str:
    return str(task.request.id or "")


def _agent(slug: str) -> Agent:
    try:
        return Agent.objects.get(slug=slug)
    except Agent.DoesNotExist:
        raise PermanentError("agent_not_found", f"no agent with the slug {slug!r}") from None


def _session(session_id: int) -> Session:
    try:
        return Session.objects.select_related("agent").get(pk=session_id)
    except Session.DoesNotExist:
        raise PermanentError("session_not_found", f"no session {session_id}") from None


class AgentSlug(Params):
    agent: str = Field(description="The agent's slug.", min_length=1, max_length=100)

    @field_validator("agent")
    @classmethod
    def _known(cls, value: str) -> str:
        if not Agent.objects.filter(slug=value).exists():
            raise ValueError(f"no agent with the slug {value!r}")
        return value


# --- Conversations -------------------------------------------------------------------------------


class MessageParams(Params):
    session_id: int = Field(gt=0, description="The session the message belongs to.")
    text: str = Field(min_length=1, max_length=10_000, description="What the user said.")
    idempotency_key: str = Field(
        "", max_length=200, description="'<source>:<message id>': a second delivery is a no-op."
    )
    trace_id: str = Field("", max_length=64, description="Carried into logs and the result.")


@catalog_task(
    name="agents.process_message",
    description="Store a user's message, answer it with the agent's brain, deliver the reply.",
    params=MessageParams,
    bind=True,
)
def process_message(
    self: Any, session_id: int, text: str, idempotency_key: str = "", trace_id: str = ""
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        session = _session(session_id)
        received = services.message_receive(
            session=session, content=text, idempotency_key=idempotency_key, task_id=_task_id(self)
        )
        reply = services.message_answer(message=received.message, task_id=_task_id(self))
        if session.is_external and session.agent.webhook_url and reply.delivered_at is None:
            task_queue(send_response, message_id=reply.pk)
        if services.unsummarized_count(session) > settings.AGENT_SUMMARY_AFTER:
            task_queue(summarize_session, session_id=session.pk)
        return {
            "session": session.pk,
            "message": received.message.pk,
            "reply": reply.pk,
            "content": reply.content,
            "duplicate": not received.created,
            "trace_id": trace_id,
        }

    return task_run_with_retries(self, work, policy=RETRY_POLICY)


class DeliveryParams(Params):
    message_id: int = Field(gt=0, description="The assistant message to deliver.")


@catalog_task(
    name="agents.send_response",
    description="POST an agent's reply to its webhook (signed), retried on failure.",
    params=DeliveryParams,
    bind=True,
)
def send_response(self: Any, message_id: int) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        try:
            message = Message.objects.select_related("session__agent").get(pk=message_id)
        except Message.DoesNotExist:
            raise PermanentError("message_not_found", f"no message {message_id}") from None
        if message.delivered_at is not None:
            return {"message": message.pk, "delivered": False, "reason": "already delivered"}
        session = message.session
        status = deliver(
            session.agent,
            {
                "type": "message",
                "agent": session.agent.slug,
                "channel": session.channel,
                "conversation": session.external_id,
                "message": services.message_payload(message),
            },
        )
        services.message_mark_delivered(message=message)
        return {"message": message.pk, "delivered": True, "status": status}

    return task_run_with_retries(self, work, policy=RETRY_POLICY)


# --- Side effects: orders in the CRM (the MIRT seed's `create_crm_order`) -------------------------


class OrderLine(Params):
    sku: str = Field(min_length=1, max_length=100, description="The product's code.")
    quantity: int = Field(ge=1, le=100_000, description="How many.")
    unit_price: Decimal = Field(
        ge=0, max_digits=12, decimal_places=2, description="Price of one, in the order's currency."
    )

    @field_validator("unit_price")
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        # One way to write a price ("12.50", never "12.5"): the order's record compares contents.
        return value.quantize(Decimal("0.01"))


class Customer(Params):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field("", max_length=254)
    phone: str = Field("", max_length=40)


class CrmOrder(Params):
    order_id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="The agent's own id for the order: with the agent, its idempotency key.",
    )
    customer: Customer = Field(description="Who ordered.")
    lines: list[OrderLine] = Field(min_length=1, max_length=500, description="What was ordered.")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    note: str = Field("", max_length=2000, description="Anything the agent adds.")


class CrmOrderParams(CrmOrder, AgentSlug):
    pass


@catalog_task(
    name="agents.create_crm_order",
    description="POST an order an agent produced to the CRM (signed, once per order id), "
    "retried on failure.",
    params=CrmOrderParams,
    bind=True,
)
def create_crm_order(
    self: Any,
    agent: str,
    order_id: str,
    customer: dict[str, Any],
    lines: list[dict[str, Any]],
    currency: str = "USD",
    note: str = "",
) -> dict[str, Any]:
    raw = {
        "order_id": order_id,
        "customer": customer,
        "lines": lines,
        "currency": currency,
        "note": note,
    }
    # Checked again, in one form (prices as "12.50"), whoever queued it: the order's record
    # compares its contents from run to run.
    try:
        order = CrmOrder.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        raise PermanentError("invalid_order", str(exc)) from exc

    def work() -> dict[str, Any]:
        return crm.crm_order_send(agent=_agent(agent), order=order, run_id=_task_id(self))

    return task_run_with_retries(self, work, policy=RETRY_POLICY)


def deliver(agent: Agent, payload: dict[str, Any]) -> int:
    """POST `payload` to the agent's webhook, signed with its secret; errors are ours."""
    if not agent.webhook_url:
        raise PermanentError("no_webhook", f"agent {agent.slug!r} has no webhook URL")
    # No secret, no signature: one made with the empty key would prove nothing.
    secret = agent.webhook_secret
    try:
        return webhook_post(
            url=agent.webhook_url,
            payload=payload,
            timeout=settings.AGENT_WEBHOOK_TIMEOUT,
            sign=(lambda body: {HEADER: sign(secret, body)}) if secret else None,
        )
    except NotificationRejected as exc:
        raise PermanentError("webhook_rejected", str(exc)) from exc
    except NotificationError as exc:
        raise ExternalServiceError("webhook", str(exc)) from exc


class SessionParams(Params):
    session_id: int = Field(gt=0, description="The session.")


@catalog_task(
    name="agents.summarize_session",
    description="Fold a long session's older messages into its summary (the last few stay).",
    params=SessionParams,
    bind=True,
)
def summarize_session(self: Any, session_id: int) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        session = _session(session_id)
        changed = services.session_summarize(session=session)
        return {"session": session.pk, "summarized": changed, "until": session.summarized_until}

    return task_run_with_retries(self, work, policy=RETRY_POLICY)


@catalog_task(
    name="agents.check_sessions_for_summarization",
    description="Queue a summary of every session longer than AGENT_SUMMARY_AFTER messages.",
)
def check_sessions_for_summarization() -> dict[str, Any]:
    long_sessions = list(
        Session.objects.annotate(
            pending=Count("messages", filter=Q(messages__id__gt=F("summarized_until")))
        )
        .filter(pending__gt=settings.AGENT_SUMMARY_AFTER)
        .values_list("pk", flat=True)
    )
    for session_id in long_sessions:
        task_queue(summarize_session, session_id=session_id)
    return {"queued": len(long_sessions)}


@catalog_task(
    name="agents.send_followup",
    description="After a silence, the agent writes once to the user (web, or its webhook).",
    params=SessionParams,
    bind=True,
)
def send_followup(self: Any, session_id: int) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        session = _session(session_id)
        message = services.session_follow_up(session=session, task_id=_task_id(self))
        if message is None:
            return {"session": session.pk, "sent": False}
        if session.is_external and session.agent.webhook_url:
            task_queue(send_response, message_id=message.pk)
        return {"session": session.pk, "sent": True, "message": message.pk}

    return task_run_with_retries(self, work, policy=RETRY_POLICY)


@catalog_task(
    name="agents.check_sessions_for_followups",
    description="Queue a follow-up for every open session silent past its follow-up time.",
)
def check_sessions_for_followups() -> dict[str, Any]:
    due = list(
        Session.objects.filter(
            status=Session.Status.OPEN, followup_due_at__lte=timezone.now()
        ).values_list("pk", flat=True)
    )
    for session_id in due:
        task_queue(send_followup, session_id=session_id)
    return {"queued": len(due)}


@catalog_task(
    name="agents.close_stale_sessions",
    description="Close the open sessions silent for SESSION_IDLE_CLOSE seconds (the seeds' "
    "stale-session check).",
)
def close_stale_sessions() -> dict[str, Any]:
    return {"closed": services.sessions_close_idle()}


@catalog_task(
    name="agents.backup_memory",
    description="Write every agent's state and session summaries to BACKUP_DIR/agents/, keep "
    "the newest BACKUP_KEEP.",
    overlap=OverlapPolicy.SKIP,
)
def backup_memory() -> dict[str, Any]:
    return memory.memory_backup()


@catalog_task(
    name="agents.cleanup_memory",
    description="Drop the agents' state keys whose time to live has passed.",
)
def cleanup_memory() -> dict[str, Any]:
    return {"dropped": memory.memory_prune()}


# --- Posts and replies (the Puti seed's `post` and `reply`) ---------------------------------------


class PostParams(AgentSlug):
    topic: str = Field(min_length=1, max_length=200, description="What the post is about.")


@catalog_task(
    name="agents.post",
    description="The agent writes a post on a topic; delivered to its webhook when it has one.",
    params=PostParams,
    bind=True,
)
def post(self: Any, agent: str, topic: str) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        the_agent = _agent(agent)
        # A retry (the delivery failed) delivers the post it wrote, not a new one.
        written = Post.objects.filter(task_id=_task_id(self)).first() if self.request.id else None
        if written is None:
            written = services.post_compose(agent=the_agent, topic=topic, task_id=_task_id(self))
        delivered = False
        if the_agent.webhook_url and written.delivered_at is None:
            deliver(
                the_agent,
                {
                    "type": "post",
                    "agent": the_agent.slug,
                    "post": {"id": written.pk, "topic": topic, "content": written.content},
                },
            )
            Post.objects.filter(pk=written.pk).update(
                status=Post.Status.DELIVERED, delivered_at=timezone.now()
            )
            delivered = True
        return {"post": written.pk, "content": written.content, "delivered": delivered}

    return task_run_with_retries(self, work, policy=RETRY_POLICY)


class ReplyParams(AgentSlug):
    time_value: int = Field(1, ge=1, le=10_000, description="How far back to look...")
    time_unit: Literal["minutes", "hours", "days"] = Field("hours", description="...in these.")


@catalog_task(
    name="agents.reply",
    description="The agent answers the mentions it received in the last time_value time_unit.",
    params=ReplyParams,
    bind=True,
)
def reply(self: Any, agent: str, time_value: int = 1, time_unit: str = "hours") -> dict[str, Any]:
    def work() -> dict[str, Any]:
        the_agent = _agent(agent)
        since = timezone.now() - timedelta(**{time_unit: time_value})
        mentions = list(
            Mention.objects.filter(
                agent=the_agent, received_at__gte=since, replied_at__isnull=True
            ).order_by("received_at", "id")
        )
        answered = undelivered = 0
        for mention in mentions:
            if not services.mention_reply(mention=mention, task_id=_task_id(self)):
                continue  # answered by another run meanwhile
            answered += 1
            if not the_agent.webhook_url:
                continue
            payload = {
                "type": "reply",
                "agent": the_agent.slug,
                "mention": {"source": mention.source, "id": mention.external_id},
                "content": mention.reply,
            }
            try:
                deliver(the_agent, payload)
            except (RetryableError, PermanentError) as exc:
                # The answer is stored: a retry of the whole run would not send it again.
                logger.warning("reply to mention %s not delivered: %s", mention.pk, exc)
                undelivered += 1
        return {"mentions": len(mentions), "answered": answered, "undelivered": undelivered}

    return task_run_with_retries(self, work, policy=RETRY_POLICY)
