"""Shapes of the agents' API: what requests may carry (types only) and what answers look like.

As in `scheduler/api/serializers.py`, input serializers check types and nothing more where a
service validates the values (session_open, dispatch_message, the catalog), so the API answers
with the services' messages.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from agents.models import Message, Session
from scheduler.api import StrictSerializer, absolute

RUN_ACTIONS = {"post": "agents.post", "reply": "agents.reply"}
INBOUND_CHANNELS = [Session.Channel.WEBHOOK.value, Session.Channel.TELEGRAM.value]


class TextField(serializers.CharField):
    """A string and nothing else: DRF's CharField would turn 5 or 1.5 into "5" or "1.5"."""

    default_error_messages = {"invalid": "must be a string, not {kind}"}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid", kind=type(data).__name__)
        return super().to_internal_value(data)


class ExternalIdField(serializers.CharField):
    """An id on another system: a string, or a whole number (chat ids often are), as a string."""

    default_error_messages = {"invalid": "must be a string or a whole number, not {kind}"}

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int):
            self.fail("invalid", kind=type(data).__name__)
        return super().to_internal_value(str(data))


# --- Sessions ------------------------------------------------------------------------------------


class SessionOpenSerializer(StrictSerializer):
    agent = TextField(max_length=100, help_text="the agent's slug")
    channel = TextField(
        required=False,
        default=Session.Channel.WEB.value,
        help_text=f"{', '.join(Session.Channel.values)} (default web)",
    )
    external_id = ExternalIdField(
        required=False,
        default="",
        allow_blank=True,
        max_length=200,
        help_text="the conversation's id on an external channel (required but for web)",
    )


class SessionListQuerySerializer(serializers.Serializer[Any]):
    agent = serializers.CharField(required=False, help_text="only this agent's (its slug)")
    channel = serializers.ChoiceField(choices=Session.Channel.values, required=False)
    status = serializers.ChoiceField(choices=Session.Status.values, required=False)


class SessionSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    agent = serializers.CharField(source="agent.slug")
    channel = serializers.CharField()
    external_id = serializers.CharField()
    status = serializers.CharField()
    summary = serializers.CharField()
    last_message_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()
    messages_url = serializers.SerializerMethodField(help_text="GET its messages, POST to it")
    chat_url = serializers.SerializerMethodField(help_text="its chat page, for staff")

    def get_url(self, session: Session) -> str:
        return absolute(self.context.get("request"), "api-session-detail", session.pk)

    def get_messages_url(self, session: Session) -> str:
        return absolute(self.context.get("request"), "api-session-messages", session.pk)

    def get_chat_url(self, session: Session) -> str:
        return absolute(self.context.get("request"), "agents-chat", session.pk)


# --- Messages ------------------------------------------------------------------------------------


class MessageSerializer(serializers.Serializer[Any]):
    """Documents `agents.services.message_payload`, which the API and the live events send."""

    id = serializers.IntegerField()
    session = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Message.Role.values)
    content = serializers.CharField()
    created_at = serializers.DateTimeField()
    task_id = serializers.CharField(help_text="the run that stored it; empty when none")
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    reply_to = serializers.IntegerField(allow_null=True, help_text="the message it answers")


class MessageInputSerializer(StrictSerializer):
    # Blank and too long are the dispatcher's to say (as "text"), with the same messages as
    # everywhere else a message arrives.
    text = TextField(allow_blank=True, trim_whitespace=False, help_text="what the user says")
    message_id = ExternalIdField(
        required=False,
        default="",
        allow_blank=True,
        max_length=100,
        help_text="the message's id at its source: a second delivery is stored and answered once",
    )
    source = serializers.RegexField(  # type: ignore[assignment]
        r"^[A-Za-z0-9_.-]*$",
        required=False,
        default="",
        allow_blank=True,
        max_length=40,
        help_text="where it comes from (default: the session's channel)",
        error_messages={"invalid": "letters, digits, '.', '_' and '-' only"},
    )


class MessageQueuedSerializer(serializers.Serializer[Any]):
    queued = serializers.BooleanField(default=True)
    task_id = serializers.CharField()
    trace_id = serializers.CharField()
    url = serializers.URLField(help_text="GET it to follow the task (add ?wait=S to wait)")


class MessageAnsweredSerializer(serializers.Serializer[Any]):
    """The synchronous answer, when the deployment runs without Celery (CELERY_ENABLED=false)."""

    queued = serializers.BooleanField(default=False)
    task_id = serializers.CharField(allow_null=True)
    trace_id = serializers.CharField()
    duplicate = serializers.BooleanField(help_text="the same message_id was delivered before")
    message = MessageSerializer()
    reply = MessageSerializer()


# --- Runs ----------------------------------------------------------------------------------------


class RunSerializer(StrictSerializer):
    action = serializers.ChoiceField(
        choices=sorted(RUN_ACTIONS),
        help_text="post: write a post on a topic; reply: answer recent mentions",
    )
    params = serializers.JSONField(
        required=False,
        default=dict,
        help_text=(
            "the parameters of agents.post or agents.reply (GET /api/catalog/), without "
            "`agent`: the agent is the one in the URL"
        ),
    )


# --- Inbound -------------------------------------------------------------------------------------


class InboundSerializer(serializers.Serializer[Any]):
    type = serializers.ChoiceField(choices=["message", "mention"])


class InboundMessageSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["message"])
    conversation = ExternalIdField(max_length=200, help_text="the chat's id on the channel")
    message_id = ExternalIdField(
        max_length=100, help_text="the message's id on the channel: delivered twice, kept once"
    )
    text = TextField()
    channel = serializers.ChoiceField(
        choices=INBOUND_CHANNELS, required=False, default=Session.Channel.WEBHOOK.value
    )

    def validate_text(self, value: str) -> str:
        # Checked here, before a session is opened for it: a refused message stores nothing.
        if len(value) > settings.AGENT_MESSAGE_MAX_LENGTH:
            raise serializers.ValidationError(
                f"at most {settings.AGENT_MESSAGE_MAX_LENGTH} characters"
            )
        return value


class InboundMentionSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["mention"])
    mention_id = ExternalIdField(max_length=200, help_text="the mention's id on its source")
    author = TextField(required=False, default="", allow_blank=True, max_length=200)
    text = TextField()
    source = serializers.RegexField(  # type: ignore[assignment]
        r"^[A-Za-z0-9_.-]+$",
        required=False,
        default="webhook",
        max_length=50,
        error_messages={"invalid": "letters, digits, '.', '_' and '-' only"},
    )


class MentionSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    source = serializers.CharField()  # type: ignore[assignment]
    external_id = serializers.CharField()
    author = serializers.CharField()
    content = serializers.CharField()
    received_at = serializers.DateTimeField()
    replied_at = serializers.DateTimeField(allow_null=True)


class MentionStoredSerializer(serializers.Serializer[Any]):
    created = serializers.BooleanField(help_text="false: it had been delivered before")
    mention = MentionSerializer()


class InboundQueuedSerializer(MessageQueuedSerializer):
    session = serializers.IntegerField(help_text="the conversation's session")
