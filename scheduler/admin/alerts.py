"""The admin of alerting: channels, rules, incidents and the log of notifications.

Every write is one call of a service (`channel_save`, `rule_save`, `incident_acknowledge`, ...),
audited as the admin user's with source admin, as the CLI and the API write them. The forms
(alert_forms.py) run the services' checks first, so a form with an error saves nothing.
Incidents are the engine's: staff acknowledge, silence and resolve them (the manage_alerts
permission) but never add or edit one; deliveries are a read-only log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from scheduler.admin.alert_forms import AcknowledgeForm, AlertChannelForm, AlertRuleForm
from scheduler.admin.run_now import ReadOnlyAdmin
from scheduler.core.formatting import duration_text
from scheduler.models import AlertChannel, AlertRule, Incident, NotificationDelivery, Source
from scheduler.observability.pagination import EstimatedCountPaginator
from scheduler.selectors.alerts import (
    INCIDENTS_OPEN_FIRST,
    alert_channels,
    alert_rules,
    incident_lasted,
    incident_status,
)
from scheduler.services import (
    AlertNotFound,
    ScheduleError,
    channel_delete,
    channel_save,
    incident_acknowledge,
    incident_silence,
    rule_delete,
    rule_save,
)
from scheduler.services.incidents import channel_send_test, incident_resolve

MANAGE_ALERTS = "scheduler.manage_alerts"
SILENCES = (1, 4, 24)  # hours, one action each


def _changelist(model: type[Any], **filters: object) -> str:
    url = reverse(f"admin:scheduler_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _refusal(exc: Exception) -> str:
    """A service's refusal without its field name ("incident 3 is already resolved")."""
    if isinstance(exc, ScheduleError):
        return " ".join(message for messages in exc.errors.values() for message in messages)
    return str(exc)


class ServiceSavedAdmin(admin.ModelAdmin[Any]):
    """Rows saved by a service keyed by name: the name is fixed once saved (a rename would be a
    new row to the service), and the form's own saving is skipped."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "name") if obj is not None else fields

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        for formset in formsets:  # the service has set the many-to-many fields
            self.save_formset(request, form, formset, change=change)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ScheduleError, AlertNotFound) as exc:
            # The form runs the service's checks, so only a race (a save or delete in between)
            # gets here; the admin's transaction has rolled back: nothing was saved.
            self.message_user(request, f"Nothing was saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


# --- channels ----------------------------------------------------------------------------------


@admin.register(AlertChannel)
class AlertChannelAdmin(ServiceSavedAdmin):
    form = AlertChannelForm
    list_display = ("name", "kind", "enabled", "last_delivery")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    actions = ("send_test",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertChannel]:
        return alert_channels()

    @admin.display(description="Last delivery", ordering="last_delivery_at")
    def last_delivery(self, obj: AlertChannel) -> str:
        status = getattr(obj, "last_status", None)
        if status is None:
            return "none yet"
        at = timezone.localtime(getattr(obj, "last_delivery_at", None))
        return format_html(
            '<a href="{}">{}</a> {}',
            _changelist(NotificationDelivery, channel__id__exact=obj.pk),
            status,
            f"{at:%Y-%m-%d %H:%M}",
        )

    def save_model(self, request: HttpRequest, obj: AlertChannel, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = channel_save(
            name=obj.name,
            kind=data["kind"],
            config=data["config"],
            enabled=data["enabled"],
            actor=request.user,
            source=Source.ADMIN,
            create=not change,
        )
        obj.pk, obj.config = saved.pk, saved.config

    def delete_model(self, request: HttpRequest, obj: AlertChannel) -> None:
        channel_delete(name=obj.name, actor=request.user, source=Source.ADMIN)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AlertChannel]) -> None:
        with transaction.atomic():
            for name in queryset.values_list("name", flat=True):
                channel_delete(name=name, actor=request.user, source=Source.ADMIN)

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[AlertChannel]) -> None:
        for channel in queryset:
            try:
                delivery = channel_send_test(
                    name=channel.name, actor=request.user, source=Source.ADMIN
                )
            except (ScheduleError, AlertNotFound) as exc:
                self.message_user(request, f"{channel.name}: {_refusal(exc)}", messages.ERROR)
                continue
            self.message_user(
                request,
                format_html(
                    'Test notification to {} queued: see <a href="{}">its delivery</a> in the log.',
                    channel.name,
                    reverse("admin:scheduler_notificationdelivery_change", args=[delivery.pk]),
                ),
                messages.SUCCESS,
            )


# --- rules -------------------------------------------------------------------------------------


@admin.register(AlertRule)
class AlertRuleAdmin(ServiceSavedAdmin):
    form = AlertRuleForm
    list_display = (
        "name",
        "trigger",
        "target_summary",
        "channel_names",
        "enabled",
        "open_incidents",
    )
    list_filter = ("trigger", "target_type", "enabled")
    search_fields = ("name", "target", "description")
    filter_horizontal = ("channels",)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "description")}),
        ("What it watches", {"fields": ("target_type", "target")}),
        ("When it fires", {"fields": ("trigger", "threshold", "duration")}),
        (
            "Who hears of it",
            {
                "fields": (
                    "channels",
                    "repeat_interval",
                    ("quiet_start", "quiet_end"),
                    "quiet_timezone",
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertRule]:
        return alert_rules()

    @admin.display(description="Target", ordering="target")
    def target_summary(self, obj: AlertRule) -> str:
        if obj.target_type == AlertRule.Target.ALL:
            return "everything"
        return f"{obj.get_target_type_display()}: {obj.target}"

    @admin.display(description="Channels")
    def channel_names(self, obj: AlertRule) -> str:
        return ", ".join(channel.name for channel in obj.channels.all())

    @admin.display(description="Open incidents", ordering="open_incidents")
    def open_incidents(self, obj: AlertRule) -> str:
        count = getattr(obj, "open_incidents", 0)
        if not count:
            return "0"
        url = _changelist(Incident, rule__id__exact=obj.pk, state="open")
        return format_html('<a href="{}">{}</a>', url, count)

    def save_model(self, request: HttpRequest, obj: AlertRule, form: Any, change: bool) -> None:
        assert form.rule_input is not None  # a valid form checked its rule
        saved = rule_save(
            form.rule_input, actor=request.user, source=Source.ADMIN, create=not change
        )
        obj.pk, obj.target_key = saved.pk, saved.target_key

    def delete_model(self, request: HttpRequest, obj: AlertRule) -> None:
        rule_delete(name=obj.name, actor=request.user, source=Source.ADMIN)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        with transaction.atomic():
            for name in queryset.values_list("name", flat=True):
                rule_delete(name=name, actor=request.user, source=Source.ADMIN)


# --- incidents ---------------------------------------------------------------------------------


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return (("open", "Open"), ("resolved", "Resolved"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("open", "resolved"):
            return queryset.filter(resolved_at__isnull=self.value() == "open")
        return queryset


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return (("yes", "Yes"), ("no", "No"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "no")
        return queryset


class DeliveryInline(admin.TabularInline):
    model = NotificationDelivery
    fields = ("created_at", "channel", "kind", "status", "attempts", "response_code", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("created_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationDelivery]:
        return super().get_queryset(request).select_related("channel")


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin[Incident]):
    list_display = (
        "title",
        "rule",
        "status",
        "opened_at",
        "lasted",
        "match_count",
        "acknowledged_by",
    )
    list_select_related = ("rule", "acknowledged_by")
    list_filter = (
        StateFilter,
        AcknowledgedFilter,
        "rule",
        ("rule__trigger", admin.ChoicesFieldListFilter),
    )
    search_fields = ("title", "subject", "rule__name")
    inlines = (DeliveryInline,)
    actions = (
        "acknowledge",
        "silence_1h",
        "silence_4h",
        "silence_24h",
        "lift_silence",
        "resolve",
    )
    fields = (
        "title",
        "rule",
        "subject",
        "status",
        "opened_at",
        "resolved_at",
        "lasted",
        "last_match_at",
        "match_count",
        "notified_at",
        "acknowledged_by",
        "acknowledged_at",
        "acknowledge_note",
        "silenced_until",
        "owner",
        "details_pretty",
    )
    readonly_fields = fields

    def get_ordering(self, request: HttpRequest) -> Any:
        return INCIDENTS_OPEN_FIRST

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the engine opens incidents

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # changed only by the actions below, through the services

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # their history stays; retention clears old ones

    def has_manage_alerts_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(MANAGE_ALERTS))

    @admin.display(description="Status")
    def status(self, obj: Incident) -> str:
        return incident_status(obj)

    @admin.display(description="Lasted")
    def lasted(self, obj: Incident) -> str:
        text = duration_text(incident_lasted(obj))
        return text if obj.resolved_at else f"{text} so far"

    @admin.display(description="Belongs to")
    def owner(self, obj: Incident) -> str:
        return f"{obj.object_type} {obj.object_id}" if obj.object_type else ""

    @admin.display(description="Details")
    def details_pretty(self, obj: Incident) -> str:
        text = json.dumps(obj.details, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        return format_html('<pre class="scheduler-details">{}</pre>', text)

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Incident],
        act: Callable[[Incident], object],
        *,
        done: str,
    ) -> None:
        """`act` on each incident: one message per refusal, one listing those done."""
        acted = []
        for incident in queryset.select_related("rule"):
            try:
                act(incident)
            except (ScheduleError, AlertNotFound) as exc:
                self.message_user(
                    request, f"Incident {incident.pk}: {_refusal(exc)}", messages.ERROR
                )
                continue
            acted.append(f"{incident.pk} ({incident.title})")
        if acted:
            self.message_user(request, f"{done}: {', '.join(acted)}.", messages.SUCCESS)

    @admin.action(description="Acknowledge selected incidents", permissions=["manage_alerts"])
    def acknowledge(
        self, request: HttpRequest, queryset: QuerySet[Incident]
    ) -> TemplateResponse | None:
        form = AcknowledgeForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_valid():
            note = form.cleaned_data["note"]
            self._each(
                request,
                queryset,
                lambda incident: incident_acknowledge(
                    incident_id=incident.pk, actor=request.user, note=note, source=Source.ADMIN
                ),
                done="Acknowledged",
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Acknowledge incidents",
            "opts": self.model._meta,
            "queryset": queryset.select_related("rule"),
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/scheduler/incident/acknowledge.html", context)

    def _silence(self, request: HttpRequest, queryset: QuerySet[Incident], hours: int) -> None:
        until = timezone.now() + timedelta(hours=hours)
        self._each(
            request,
            queryset,
            lambda incident: incident_silence(
                incident_id=incident.pk, until=until, actor=request.user, source=Source.ADMIN
            ),
            done=f"Silenced until {timezone.localtime(until):%Y-%m-%d %H:%M %Z}",
        )

    @admin.action(description="Silence for 1 hour", permissions=["manage_alerts"])
    def silence_1h(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._silence(request, queryset, 1)

    @admin.action(description="Silence for 4 hours", permissions=["manage_alerts"])
    def silence_4h(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._silence(request, queryset, 4)

    @admin.action(description="Silence for 24 hours", permissions=["manage_alerts"])
    def silence_24h(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._silence(request, queryset, 24)

    @admin.action(description="Lift silence", permissions=["manage_alerts"])
    def lift_silence(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._each(
            request,
            queryset,
            lambda incident: incident_silence(
                incident_id=incident.pk, until=None, actor=request.user, source=Source.ADMIN
            ),
            done="Silence lifted",
        )

    @admin.action(description="Resolve selected incidents", permissions=["manage_alerts"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._each(
            request,
            queryset,
            lambda incident: incident_resolve(
                incident_id=incident.pk, actor=request.user, source=Source.ADMIN
            ),
            done="Resolved",
        )


# --- the delivery log --------------------------------------------------------------------------


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "channel",
        "kind",
        "status",
        "attempts",
        "response_code",
        "error_summary",
        "incident_link",
    )
    list_select_related = ("channel", "incident")
    list_filter = ("status", "kind", "channel")
    search_fields = ("subject",)
    # A log that grows with every notification: counted by estimate when large.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    fields = (
        "created_at",
        "sent_at",
        "channel",
        "kind",
        "status",
        "attempts",
        "response_code",
        "error",
        "task_id",
        "incident_link",
        "subject",
        "message_text",
    )
    readonly_fields = fields

    @admin.display(description="Error")
    def error_summary(self, obj: NotificationDelivery) -> str:
        first = obj.error.strip().splitlines()[0] if obj.error.strip() else ""
        return first if len(first) <= 80 else first[:79] + "…"

    @admin.display(description="Incident")
    def incident_link(self, obj: NotificationDelivery) -> str:
        if obj.incident_id is None:
            return "test" if obj.kind == NotificationDelivery.Kind.TEST else ""
        url = reverse("admin:scheduler_incident_change", args=[obj.incident_id])
        return format_html('<a href="{}">{}</a>', url, obj.incident)

    @admin.display(description="Message")
    def message_text(self, obj: NotificationDelivery) -> str:
        lines = obj.message.splitlines()
        return format_html_join("", "<div>{}</div>", ((line,) for line in lines))
