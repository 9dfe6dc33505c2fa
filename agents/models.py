from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class Agent(models.Model):
    class Kind(models.TextChoices):
        CHAT = "chat", "Chat"
        POSTER = "poster", "Poster"
        TRADER = "trader", "Trader"

    class Brain(models.TextChoices):
        RULES = "rules", "Rules (offline, deterministic)"
        OPENAI = "openai", "OpenAI-compatible LLM"

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CHAT)
    brain = models.CharField(max_length=20, choices=Brain.choices, default=Brain.RULES)
    brain_config = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agents",
    )
    # Where the agent's replies (external sessions) and posts are delivered, signed with
    # webhook_secret; the same secret signs what is delivered to /api/inbound/<slug>/.
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=100, default=new_webhook_secret)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentSchedule(models.Model):
    """A periodic task the agent owns (posting, replies, check-ins); the task row is beat's."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="schedules")
    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.CASCADE, related_name="agent_schedule"
    )

    class Meta:
        ordering = ["periodic_task__name"]

    def __str__(self) -> str:
        return self.periodic_task.name


class Session(models.Model):
    class Channel(models.TextChoices):
        WEB = "web", "Web"
        WEBHOOK = "webhook", "Webhook"
        TELEGRAM = "telegram", "Telegram-style external channel"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="sessions")
    channel = models.CharField(max_length=20, choices=Channel.choices, default=Channel.WEB)
    # The conversation's id on the external channel (a chat id); empty for web sessions.
    external_id = models.CharField(max_length=200, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agent_sessions",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    summary = models.TextField(blank=True)
    # Messages up to this id are in the summary (the brain sees the summary, then the rest).
    summarized_until = models.BigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    followup_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "channel", "external_id"],
                condition=~Q(external_id=""),
                name="agents_session_one_per_external_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent} / {self.get_channel_display()} {self.external_id or self.pk}"

    @property
    def is_external(self) -> bool:
        return self.channel != self.Channel.WEB


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"
        SYSTEM = "system", "System"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    task_id = models.CharField(max_length=255, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # One per source message ("<source>:<message id>" for what arrives, "reply:<id>" for the
    # answer to message <id>): a message delivered twice is stored once, and answered once.
    idempotency_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    reply_to = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reply"
    )
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:50]}"


class Post(models.Model):
    class Status(models.TextChoices):
        PUBLISHED = "published", "Published"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Delivery failed"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="posts")
    topic = models.CharField(max_length=200)
    content = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PUBLISHED)
    task_id = models.CharField(max_length=255, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.agent}: {self.topic}"


class Mention(models.Model):
    """Something said to an agent elsewhere (a post's comment, a tagged message) it may answer."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="mentions")
    source = models.CharField(max_length=50, default="webhook")
    external_id = models.CharField(max_length=200)
    author = models.CharField(max_length=200, blank=True)
    content = models.TextField()
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    reply = models.TextField(blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "source", "external_id"], name="agents_mention_once_per_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.author or self.source}: {self.content[:50]}"
