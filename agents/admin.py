"""The agents' admin: agents (brain config checked by their brain, schedules inline), sessions
with their messages, and read-only lists of posts and mentions.

Writes to the agents' periodic tasks go through the scheduler: "Run now" is the periodic task
admin's own run (`RunNowMixin`: `schedule_run_now`, audited), pausing and resuming is
the scheduler's pause step (why and until when; `pause_step`) and `agent_schedules_resume`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.timezone import get_current_timezone, localtime
from django.views.decorators.http import require_POST

from agents.brains import BrainConfigError, validate_brain_config
from agents.models import Agent, AgentSchedule, Mention, Message, Post, Session
from agents.selectors import (
    agent_schedule_of,
    periodic_task_last_result,
    session_latest_message_ids,
)
from agents.services import agent_schedules_resume, agents_schedule_names
from scheduler.admin import ReadOnlyAdmin, RunNowMixin, pause_step
from scheduler.schedules import pause_of, schedule_describe
from scheduler.services import ScheduleError

# Running or pausing a periodic task needs what the periodic task admin asks for it.
SCHEDULE_PERMISSION = "django_celery_beat.change_periodictask"
VIEW_SCHEDULE = "django_celery_beat.view_periodictask"
# The session page lists the latest messages; the chat page and the API have all of them.
MESSAGES_SHOWN = 200
SECRET_SHOWN = 4


def masked(secret: str) -> str:
    """A secret shown by its last characters only, so staff can tell which one is set."""
    if not secret:
        return ""
    if len(secret) <= SECRET_SHOWN * 2:
        return "•" * 8
    return "•" * 8 + secret[-SECRET_SHOWN:]


# --- Agents --------------------------------------------------------------------------------------


class JSONTextField(forms.JSONField):
    """Django's JSON form field, with text Python's json cannot read as a value (nested a few
    thousand deep, a whole number of thousands of digits) refused as malformed, not raised."""

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except (ValueError, RecursionError):
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except (ValueError, RecursionError):
            return forms.fields.InvalidJSONInput(data)  # shown back as typed, with the error


class AgentForm(forms.ModelForm[Agent]):
    webhook_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Where replies and posts are delivered (signed with the webhook secret).",
    )

    class Meta:
        model = Agent
        fields = [
            "name",
            "slug",
            "kind",
            "brain",
            "brain_config",
            "is_active",
            "owner",
            "webhook_url",
            "state",
        ]
        field_classes = {"brain_config": JSONTextField, "state": JSONTextField}

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        brain = cleaned.get("brain")
        if brain is None or self.has_error("brain_config"):
            return cleaned
        config = cleaned.get("brain_config")
        try:
            cleaned["brain_config"] = validate_brain_config(brain, {} if config is None else config)
        except BrainConfigError as exc:
            for key, message in exc.errors.items():
                if key == "brain":
                    self.add_error("brain", message)
                else:
                    self.add_error("brain_config", f"{key}: {message}")
        return cleaned


class AgentScheduleInline(admin.TabularInline[AgentSchedule, Agent]):
    model = AgentSchedule
    verbose_name = "schedule"
    verbose_name_plural = "schedules (periodic tasks this agent owns)"
    fields = ["periodic_task_link", "task", "schedule", "enabled", "paused", "last_run", "run_now"]
    readonly_fields = [
        "periodic_task_link",
        "task",
        "schedule",
        "enabled",
        "paused",
        "last_run",
        "run_now",
    ]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # made by agent_schedule_create, or linked by its `agent` parameter

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The rows are periodic tasks: who may see those may see them here.
        user = request.user
        return bool(user.has_perm(VIEW_SCHEDULE) or user.has_perm(SCHEDULE_PERMISSION))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # edited in the periodic task admin, which validates them

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_fields(request, obj))
        if not request.user.has_perm(SCHEDULE_PERMISSION):
            fields.remove("run_now")  # the run would be refused: no button
        return fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AgentSchedule]:
        return (
            super()
            .get_queryset(request)
            .select_related(
                "periodic_task__interval",
                "periodic_task__crontab",
                "periodic_task__clocked",
                "periodic_task__solar",
                "periodic_task__options__paused_by",
            )
        )

    @admin.display(description="Periodic task")
    def periodic_task_link(self, obj: AgentSchedule) -> str:
        url = reverse("admin:django_celery_beat_periodictask_change", args=[obj.periodic_task_id])
        return format_html('<a href="{}">{}</a>', url, obj.periodic_task.name)

    @admin.display(description="Task")
    def task(self, obj: AgentSchedule) -> str:
        return obj.periodic_task.task

    @admin.display(description="Schedule")
    def schedule(self, obj: AgentSchedule) -> str:
        return schedule_describe(obj.periodic_task)

    @admin.display(description="Enabled", boolean=True)
    def enabled(self, obj: AgentSchedule) -> bool:
        return bool(obj.periodic_task.enabled)

    @admin.display(description="Paused")
    def paused(self, obj: AgentSchedule) -> str:
        """Who paused it, why and until when (in the project's zone); empty when not paused."""
        pause = pause_of(obj.periodic_task)
        return pause.text(get_current_timezone()).removeprefix("paused ") if pause else ""

    @admin.display(description="Last run")
    def last_run(self, obj: AgentSchedule) -> str:
        result = periodic_task_last_result(name=obj.periodic_task.name)
        ran_at = obj.periodic_task.last_run_at
        if result is None:
            return f"{localtime(ran_at):%Y-%m-%d %H:%M %Z}" if ran_at else "never"
        link = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        done = f", {localtime(result.date_done):%Y-%m-%d %H:%M %Z}" if result.date_done else ""
        return format_html('<a href="{}">{}</a>{}', link, result.status, done)

    @admin.display(description="Run")
    def run_now(self, obj: AgentSchedule) -> str:
        url = reverse("admin:agents_agent_run_schedule", args=[obj.agent_id, obj.pk])
        # The button belongs to a form of its own, outside the change form (see the template):
        # it cannot submit unsaved edits, and Enter in a field never presses it.
        return format_html(
            '<button type="submit" class="button" form="agent-run-now" formaction="{}">'
            "Run now</button>",
            url,
        )


@admin.register(Agent)
class AgentAdmin(RunNowMixin, admin.ModelAdmin[Agent]):
    form = AgentForm
    change_form_template = "agents/admin_agent_change_form.html"
    list_display = [
        "name",
        "slug",
        "kind",
        "brain",
        "is_active",
        "schedule_count",
        "heartbeat_at",
        "updated_at",
    ]
    list_filter = ["kind", "brain", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["webhook_secret_masked", "heartbeat_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "kind", "is_active", "owner"]}),
        (
            "Brain",
            {
                "fields": ["brain", "brain_config"],
                "description": "The config is checked by the brain chosen: a misspelt or "
                "wrong key is named.",
            },
        ),
        ("Webhook", {"fields": ["webhook_url", "webhook_secret_masked"]}),
        ("State", {"fields": ["state", "heartbeat_at", "created_at", "updated_at"]}),
    ]
    inlines = [AgentScheduleInline]
    actions = ["pause_schedules", "resume_schedules"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return super().get_queryset(request).annotate(schedule_total=Count("schedules"))

    @admin.display(description="Schedules", ordering="schedule_total")
    def schedule_count(self, obj: Agent) -> int:
        return int(getattr(obj, "schedule_total", 0))

    @admin.display(description="Webhook secret")
    def webhook_secret_masked(self, obj: Agent) -> str:
        return masked(obj.webhook_secret) if obj.pk else "made when the agent is saved"

    # --- Schedules: pause, resume, run now -------------------------------------------------------

    def has_schedules_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(SCHEDULE_PERMISSION))

    @admin.action(
        description="Pause all schedules of the selected agents (why, until when)…",
        permissions=["schedules"],
    )
    def pause_schedules(self, request: HttpRequest, queryset: QuerySet[Agent]) -> Any:
        agents = list(queryset.order_by("name"))
        return pause_step(
            self,
            request,
            names=agents_schedule_names(agents=agents),
            selected=[(agent.pk, f"{agent.name}: every schedule") for agent in agents],
            action="pause_schedules",
            title="Pause the schedules of agents",
        )

    @admin.action(
        description="Resume all schedules of the selected agents", permissions=["schedules"]
    )
    def resume_schedules(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        try:
            changed = agent_schedules_resume(agents=queryset, actor=request.user)
        except ScheduleError as exc:  # a task outside the catalog: none is resumed
            self.message_user(request, f"Nothing was resumed: {exc}", messages.ERROR)
            return
        noun = "schedule" if changed == 1 else "schedules"
        self.message_user(request, f"{changed} {noun} resumed.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        urls: list[URLPattern] = [
            path(
                "<path:object_id>/schedules/<int:schedule_id>/run-now/",
                self.admin_site.admin_view(require_POST(self.run_schedule_view)),
                name="agents_agent_run_schedule",
            ),
        ]
        return urls + super().get_urls()

    def run_schedule_view(
        self, request: HttpRequest, object_id: str, schedule_id: int
    ) -> HttpResponse:
        agent = self.get_object(request, unquote(object_id))
        if agent is None:
            raise Http404(f"no agent with id {object_id!r}")
        if not self.has_schedules_permission(request):
            raise PermissionDenied
        schedule = agent_schedule_of(agent=agent, schedule_id=schedule_id)
        if schedule is None:
            raise Http404(f"agent {agent.slug!r} has no schedule {schedule_id}")
        self.run_named(request, [schedule.periodic_task.name])
        return HttpResponseRedirect(
            reverse("admin:agents_agent_change", args=[agent.pk], current_app=self.admin_site.name)
        )


# --- Sessions ------------------------------------------------------------------------------------


MESSAGE_FIELDS = (
    "created_at",
    "role",
    "content",
    "task_id",
    "prompt_tokens",
    "completion_tokens",
    "reply_to",
    "delivered_at",
)


class MessageInline(admin.TabularInline[Message, Session]):
    model = Message
    fk_name = "session"
    fields = MESSAGE_FIELDS
    readonly_fields = MESSAGE_FIELDS
    extra = 0
    can_delete = False
    verbose_name_plural = f"messages (the latest {MESSAGES_SHOWN})"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        object_id = unquote(str(match.kwargs.get("object_id", ""))) if match else ""
        if object_id.isdigit():
            latest = session_latest_message_ids(session_id=int(object_id), limit=MESSAGES_SHOWN)
            queryset = queryset.filter(pk__in=latest)
        return queryset.order_by("created_at", "id")


SESSION_FIELDS = (
    "agent",
    "channel",
    "external_id",
    "user",
    "status",
    "chat_link",
    "summary",
    "summarized_until",
    "last_message_at",
    "followup_due_at",
    "created_at",
    "updated_at",
)


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin[Session]):
    list_display = [
        "id",
        "agent",
        "channel",
        "external_id",
        "status",
        "last_message_at",
        "chat_link",
    ]
    list_filter = ["channel", "status", "agent"]
    list_select_related = ["agent"]
    search_fields = ["external_id", "agent__name", "agent__slug"]
    date_hierarchy = "created_at"
    fields = SESSION_FIELDS
    # Staff may close (or reopen) a session; the rest is the conversation's record.
    readonly_fields = [name for name in SESSION_FIELDS if name != "status"]
    inlines = [MessageInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # opened by session_open: the chat pages, the API, inbound webhooks

    @admin.display(description="Chat")
    def chat_link(self, obj: Session) -> str:
        if obj.pk is None:
            return ""
        return format_html(
            '<a href="{}">Open the chat page</a>', reverse("agents-chat", args=[obj.pk])
        )


# --- Posts and mentions --------------------------------------------------------------------------


@admin.register(Post)
class PostAdmin(ReadOnlyAdmin):
    list_display = ["topic", "agent", "status", "created_at", "delivered_at"]
    list_filter = ["status", "agent"]
    list_select_related = ["agent"]
    search_fields = ["topic", "content"]
    date_hierarchy = "created_at"


@admin.register(Mention)
class MentionAdmin(ReadOnlyAdmin):
    list_display = ["short_content", "agent", "source", "author", "received_at", "replied_at"]
    list_filter = ["source", ("replied_at", admin.EmptyFieldListFilter), "agent"]
    list_select_related = ["agent"]
    search_fields = ["content", "author", "external_id"]
    date_hierarchy = "received_at"

    @admin.display(description="Mention")
    def short_content(self, obj: Mention) -> str:
        return obj.content if len(obj.content) <= 80 else obj.content[:79] + "…"
