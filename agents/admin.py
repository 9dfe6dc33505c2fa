from __future__ import annotations

from django.contrib import admin

from agents.models import Agent


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin[Agent]):
    list_display = ["name", "slug", "kind", "brain", "is_active", "heartbeat_at", "updated_at"]
    list_filter = ["kind", "brain", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["heartbeat_at", "created_at", "updated_at"]
