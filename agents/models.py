from __future__ import annotations

from django.conf import settings
from django.db import models


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
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
